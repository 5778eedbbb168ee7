import type { ChildProcess } from 'node:child_process';

/**
 * Servers a test started must not outlive it, even when the test fails before its cleanup:
 * they would hold ports and disk and confuse the next run. vitest ends its workers with
 * SIGTERM, which emits no 'exit', so the signals that end a process by default are watched
 * too. Only SIGKILL of this process (or a crash of Node itself) still leaves them behind.
 */

const live = new Set<ChildProcess>();
/** The signals whose default action ends the process and that a runner sends to stop it. */
const ENDING_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

function killLive(): void {
  for (const child of live) child.kill('SIGKILL');
}

function onSignal(signal: NodeJS.Signals): void {
  killLive();
  // a listener takes away the signal's default action; when no one else handles it, give it
  // back: stop listening and raise it again, so the process ends as it would have
  if (process.listenerCount(signal) === 1) {
    unwatch();
    process.kill(process.pid, signal);
  }
}

function watch(): void {
  process.on('exit', killLive);
  for (const signal of ENDING_SIGNALS) process.on(signal, onSignal);
}

function unwatch(): void {
  process.off('exit', killLive);
  for (const signal of ENDING_SIGNALS) process.off(signal, onSignal);
}

/**
 * SIGKILLs `child` if this process exits or is ended by a signal while it still runs. The
 * listeners exist only while some child does, so a process that starts none is unchanged.
 */
export function reapAtExit(child: ChildProcess): void {
  if (live.size === 0) watch();
  live.add(child);
  const release = () => {
    if (!live.delete(child)) return;
    if (live.size === 0) unwatch();
  };
  child.once('exit', release);
  child.on('error', () => {
    if (child.pid === undefined) release(); // never spawned: there will be no exit
  });
}
