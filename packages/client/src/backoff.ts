/**
 * How long to wait before reconnect attempt `attempt` (1, 2, …), in ms; `null` stops
 * reconnecting.
 */
export type ReconnectStrategy = (attempt: number) => number | null;

export interface BackoffOptions {
  /** First delay. Default 100 ms. */
  initialMs?: number;
  /** Largest delay. Default 10 000 ms. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Give up after this many attempts. Default: never. */
  maxAttempts?: number;
  /** Random source, for tests. */
  random?: () => number;
}

/**
 * Capped exponential backoff with full jitter: a delay drawn uniformly from
 * [0, min(max, initial × factor^(attempt−1))], so a fleet of clients that lost the
 * same server does not come back in lockstep.
 */
export function exponentialBackoff(options: BackoffOptions = {}): ReconnectStrategy {
  const initial = options.initialMs ?? 100;
  const max = options.maxMs ?? 10_000;
  const factor = options.factor ?? 2;
  const random = options.random ?? Math.random;
  return (attempt) => {
    if (options.maxAttempts !== undefined && attempt > options.maxAttempts) return null;
    const cap = Math.min(max, initial * factor ** (attempt - 1));
    return Math.round(random() * cap);
  };
}
