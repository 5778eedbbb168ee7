/**
 * How the entry point (launch.ts) ran the bundle, for the start-up log line:
 * `used` its code cache; `rejected` by V8 (another Node version or V8 flags);
 * `mismatch` (made for another build, or damaged); `none` (no cache file); `off`
 * (`--enable-source-maps`: Node's own loader); `unknown` (the bundle run directly).
 */
export type CodeCacheStatus = 'used' | 'rejected' | 'mismatch' | 'none' | 'off' | 'unknown';

export const CODE_CACHE_STATUS = Symbol.for('gossipd.codeCache');

export function codeCacheStatus(): CodeCacheStatus {
  return (globalThis as Record<symbol, CodeCacheStatus | undefined>)[CODE_CACHE_STATUS] ?? 'unknown';
}
