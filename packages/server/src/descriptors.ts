import { readdirSync, readFileSync } from 'node:fs';

/**
 * Descriptors kept free for everything but client connections: the store's next segment
 * files, compaction outputs, its temporary meta and checkpoint files, the admin
 * listener's connections, logging. A store write must never fail because clients used
 * every descriptor (docs/OPERATIONS.md, "Limits").
 */
export const DESCRIPTOR_RESERVE = 128;

/** Connections past `maxConnections` that may still be open while they are told they are refused. */
export const REFUSING_SLACK = 64;

/**
 * The process's descriptor budget on Linux: its soft limit on open files (RLIMIT_NOFILE,
 * `ulimit -n`) and how many it has open now. Undefined where /proc cannot tell.
 */
export function descriptorBudget(): { limit: number; open: number } | undefined {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
    if (!m) return undefined;
    const limit = m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
    return { limit, open: readdirSync('/proc/self/fd').length };
  } catch {
    return undefined;
  }
}

/**
 * The most connections the descriptor budget allows: what is left once the open
 * descriptors, the reserve and the slack of refused connections are set aside. At least 1.
 */
export function connectionsAllowed(budget: { limit: number; open: number }): number {
  return Math.max(1, budget.limit - budget.open - DESCRIPTOR_RESERVE - REFUSING_SLACK);
}
