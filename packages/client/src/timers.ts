/**
 * Every timer of the client goes through here, looked up on `globalThis` at call
 * time, so tests that install fake timers drive backoff and timeouts.
 *
 * Two kinds, chosen per timer where it is set:
 * - `setTimer` keeps the process alive. For waits during which the client holds no
 *   socket, above all the delay before a reconnect: unref'd, a process whose only work
 *   is its client would exit the moment the server restarts.
 * - `setUnrefTimer` does not. For deadlines that only run while a socket is open (the
 *   socket already keeps the process alive) and that must not hold a process that has
 *   nothing else left to do.
 * `close()` clears both kinds, so a closed client keeps nothing alive.
 */
export type Timer = ReturnType<typeof globalThis.setTimeout>;

/** A timer that keeps the process alive until it fires or is cleared. */
export function setTimer(fn: () => void, ms: number): Timer {
  return globalThis.setTimeout(fn, ms);
}

/** A timer that does not keep the process alive by itself. */
export function setUnrefTimer(fn: () => void, ms: number): Timer {
  const t = globalThis.setTimeout(fn, ms);
  (t as { unref?: () => void }).unref?.();
  return t;
}

export function clearTimer(t: Timer | undefined): void {
  if (t !== undefined) globalThis.clearTimeout(t);
}
