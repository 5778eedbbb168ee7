import type { GossipServer } from '@gossip/server';
import type { Store } from '@gossip/store';
import type { Registry } from 'prom-client';

/**
 * Prometheus metrics, read from the server's and the store's counters when scraped:
 * the hot paths only bump plain numbers. Process metrics (CPU, memory, event loop lag)
 * come from prom-client's defaults.
 */
export async function createMetrics(
  getServer: () => GossipServer | undefined,
  getStore: () => Store | undefined,
  /** POST /compact requests refused for a missing or wrong token (admin.ts). */
  getAdminAuthFailures: () => number,
): Promise<Registry> {
  // Run on demand (main.ts makes the registry at the first scrape): prom-client is in the
  // bundle, but running its modules costs milliseconds a start need not spend.
  const { collectDefaultMetrics, Counter, Gauge, Registry } = await import('prom-client');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const server = (f: (s: GossipServer) => number) => () => {
    const s = getServer();
    return s ? f(s) : 0;
  };
  const store = (f: (s: ReturnType<Store['stats']>) => number) => () => {
    const s = getStore();
    return s ? f(s.stats()) : 0;
  };
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });

  gauge(
    'gossip_connections',
    'Open client connections',
    server((s) => s.stats.connections),
  );
  gauge(
    'gossip_legacy_connections',
    'Open connections speaking the original gossip protocol',
    server((s) => s.stats.legacyConnections),
  );
  counter(
    'gossip_connections_total',
    'Connections accepted',
    server((s) => s.stats.connectionsTotal),
  );
  counter(
    'gossip_connections_refused_total',
    'Connections refused at the connection limit',
    server((s) => s.stats.connectionsRefused),
  );
  counter(
    'gossip_messages_in_total',
    'Publishes and emits received',
    server((s) => s.stats.messagesIn),
  );
  counter(
    'gossip_bytes_in_total',
    'Bytes received from clients',
    server((s) => s.stats.bytesIn),
  );
  counter(
    'gossip_messages_out_total',
    'Live messages delivered to clients',
    server((s) => s.stats.messagesOut),
  );
  counter(
    'gossip_bytes_out_total',
    'Bytes written to clients',
    server((s) => s.stats.bytesOut),
  );
  counter(
    'gossip_publishes_total',
    'Publishes received',
    server((s) => s.stats.publishes),
  );
  counter(
    'gossip_publishes_stale_total',
    'Publishes ignored as stale (ts not newer)',
    server((s) => s.stats.publishesStale),
  );
  counter(
    'gossip_publishes_failed_total',
    'Publishes the store failed to write',
    server((s) => s.stats.publishesFailed),
  );
  counter(
    'gossip_refused_total',
    'Publishes and emits refused by a limit (id, data, skew)',
    server((s) => s.stats.refused),
  );
  counter(
    'gossip_emits_total',
    'Emits received',
    server((s) => s.stats.emits),
  );
  counter(
    'gossip_fetches_total',
    'Fetch requests',
    server((s) => s.stats.fetches),
  );
  counter(
    'gossip_replays_total',
    'Replays served',
    server((s) => s.stats.replays),
  );
  counter(
    'gossip_replayed_messages_total',
    'Messages sent in replays',
    server((s) => s.stats.replayedMessages),
  );
  counter(
    'gossip_replay_read_bytes_total',
    'Record bytes native replays read from the store',
    server((s) => s.stats.replayBytes),
  );
  gauge(
    'gossip_prefixes',
    'Prefixes held by connections that subscribe by prefix',
    server((s) => s.stats.prefixes),
  );
  counter(
    'gossip_resyncs_total',
    'Resyncs (full snapshots) sent',
    server((s) => s.stats.resyncs),
  );
  counter(
    'gossip_slow_consumer_disconnects_total',
    'Connections closed past the outbound cap',
    server((s) => s.stats.slowConsumers),
  );
  counter(
    'gossip_protocol_errors_total',
    'Connections closed for a malformed frame',
    server((s) => s.stats.protocolErrors),
  );
  const hellosRefused = server((s) => s.stats.authFailures);
  counter(
    'gossip_auth_failures_total',
    'Hellos and POST /compact requests refused for a missing or bad token',
    () => hellosRefused() + getAdminAuthFailures(),
  );

  gauge(
    'gossip_store_ids',
    'Ids in the index, tombstones included',
    store((s) => s.ids),
  );
  gauge(
    'gossip_store_tombstones',
    'Tombstones in the index',
    store((s) => s.tombstones),
  );
  gauge(
    'gossip_store_segments',
    'Segment files',
    store((s) => s.segments),
  );
  gauge(
    'gossip_store_bytes',
    'Bytes of records on disk',
    store((s) => s.bytes),
  );
  gauge(
    'gossip_store_dead_ratio',
    'Share of record bytes that are superseded',
    store((s) => s.deadRatio),
  );
  counter(
    'gossip_store_compactions_total',
    'Compaction runs',
    store((s) => s.compactions),
  );
  counter(
    'gossip_store_io_errors_total',
    'Failed writes and fsyncs',
    store((s) => s.ioErrors),
  );
  gauge(
    'gossip_store_horizon_seconds',
    'Tombstone horizon (ts of the newest dropped tombstone), 0 if none',
    store((s) => (s.horizon === null ? 0 : Number(s.horizon) / 1e9)),
  );
  gauge(
    'gossip_store_newest_ts_seconds',
    'Newest persisted ts, 0 if empty',
    store((s) => (s.newestTs === null ? 0 : Number(s.newestTs) / 1e9)),
  );
  return registry;
}
