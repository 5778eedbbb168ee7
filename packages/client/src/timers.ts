/**
 * Every timer of the client goes through here, looked up on `globalThis` at call
 * time, so tests that install fake timers drive backoff and timeouts.
 */
export type Timer = ReturnType<typeof globalThis.setTimeout>;

export function setTimer(fn: () => void, ms: number): Timer {
  const t = globalThis.setTimeout(fn, ms);
  (t as { unref?: () => void }).unref?.();
  return t;
}

export function clearTimer(t: Timer | undefined): void {
  if (t !== undefined) globalThis.clearTimeout(t);
}
