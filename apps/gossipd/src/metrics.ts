import type { GossipServer } from '@gossip/server';
import type { Buckets, Store } from '@gossip/store';
import type { Metric, Registry } from 'prom-client';
import type { EdgeStats } from './cluster/edge.js';

/** How often prom-client's default metrics sample the event loop's delay (its own default). */
const EVENT_LOOP_PRECISION_MS = 10;

/**
 * Prometheus metrics, read from the server's and the store's counters when scraped:
 * the hot paths only bump plain numbers, and the histograms are plain bucket counts
 * (`Buckets`) observed per group commit, per fsync or per replay, never per message.
 * Process metrics (CPU, memory, event loop lag) come from prom-client's defaults. Every
 * family is listed in docs/OPERATIONS.md, "Metrics" (a test holds the two together).
 */
export async function createMetrics(
  getServer: () => GossipServer | undefined,
  getStore: () => Store | undefined,
  /** POST /compact requests refused for a missing or wrong token (admin.ts). */
  getAdminAuthFailures: () => number,
  /** JSON log lines dropped because their reader did not keep up (main.ts). */
  getLogLinesDropped: () => number,
  /** A cluster edge's state (docs/CLUSTER.md); undefined on one node: no cluster families then. */
  getCluster?: () => EdgeStats | undefined,
): Promise<Registry> {
  // Run on demand (main.ts makes the registry at the first scrape): prom-client is in the
  // bundle, but running its modules costs milliseconds a start need not spend.
  const { collectDefaultMetrics, Counter, Gauge, Registry } = await import('prom-client');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_PRECISION_MS });

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
  /** A counter per `reason` label, from a count per reason. */
  const counterByReason = (name: string, help: string, read: () => Record<string, number>) =>
    new Counter({
      name,
      help,
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(read())) this.inc({ reason }, n);
      },
    });
  /**
   * A histogram read from bucket counts kept elsewhere. prom-client's own Histogram can
   * only be fed one observation at a time, so this is a metric of the registry's own
   * shape (`get()` answering name, type and samples: prom-client's Registry asks no more).
   */
  const histogram = (name: string, help: string, read: () => Buckets | undefined) => {
    const metric = {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      async get() {
        const b = read();
        const cumulative = b?.cumulative() ?? [];
        const values = [
          ...(b?.bounds ?? []).map((le, i) => ({ metricName: `${name}_bucket`, labels: { le }, value: cumulative[i] })),
          { metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: b?.count ?? 0 },
          { metricName: `${name}_sum`, labels: {}, value: b?.sum ?? 0 },
          { metricName: `${name}_count`, labels: {}, value: b?.count ?? 0 },
        ];
        return { name, help, type: 'histogram', values, aggregator: 'sum' };
      },
      reset() {},
    };
    registry.registerMetric(metric as unknown as Metric);
  };

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
    'gossip_connections_accepted_total',
    'Connections accepted (those refused at the limit too)',
    server((s) => s.stats.connectionsTotal),
  );
  counterByReason(
    'gossip_connections_refused_total',
    'Connections refused as they were accepted, by reason',
    (): Record<string, number> => {
      const refused = getServer()?.stats.connectionsRefused ?? 0;
      return refused > 0 ? { too_many_connections: refused } : {};
    },
  );
  counterByReason(
    'gossip_disconnects_total',
    'Connections ended, by reason: the error code that ended it, or client_closed, client_reset, socket_error',
    () => getServer()?.stats.disconnects ?? {},
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
  counterByReason(
    'gossip_refused_total',
    'Publishes, emits and fetches refused with an error ack, by reason (its error code)',
    () => getServer()?.stats.refusedBy ?? {},
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
    'gossip_store_horizon_timestamp_seconds',
    'Tombstone horizon (ts of the newest dropped tombstone) in Unix seconds, 0 if none',
    store((s) => (s.horizon === null ? 0 : Number(s.horizon) / 1e9)),
  );
  gauge(
    'gossip_store_newest_timestamp_seconds',
    'Newest persisted ts in Unix seconds, 0 if empty',
    store((s) => (s.newestTs === null ? 0 : Number(s.newestTs) / 1e9)),
  );

  counter(
    'gossip_log_lines_dropped_total',
    'JSON log lines dropped because what reads gossipd output did not keep up (16 MiB held at most)',
    getLogLinesDropped,
  );

  histogram(
    'gossip_publish_ack_seconds',
    'Publish to ack: from the first publish of a group commit handed to the store to its acks queued, per group commit',
    () => getServer()?.stats.publishAckSeconds,
  );
  histogram(
    'gossip_replay_seconds',
    'Replays and snapshots: from the start to the replay-done (or prefix-done), per replay',
    () => getServer()?.stats.replaySeconds,
  );
  histogram(
    'gossip_store_commit_records',
    'Records per group commit (one write; one fsync under --fsync always)',
    () => getStore()?.stats().commitRecords,
  );
  histogram(
    'gossip_store_fsync_seconds',
    'Fsync duration: of each group commit under --fsync always, of each segment in a background pass',
    () => getStore()?.stats().fsyncSeconds,
  );
  if (getCluster) {
    // docs/CLUSTER.md, "What to monitor" lists them (a cluster test holds the two together)
    const cluster = (f: (s: EdgeStats) => number) => () => {
      const s = getCluster();
      return s ? f(s) : 0;
    };
    gauge(
      'gossip_cluster_connected',
      'Connected to the NATS cluster (1) or not (0)',
      cluster((s) => (s.connected ? 1 : 0)),
    );
    gauge(
      'gossip_cluster_ready',
      'Caught up, connected and the stream answering (1): what /readyz says',
      cluster((s) => (s.ready ? 1 : 0)),
    );
    gauge(
      'gossip_cluster_applied_sequence',
      "The last stream sequence the edge's copy has applied (its position)",
      cluster((s) => s.applied),
    );
    gauge(
      'gossip_cluster_behind_messages',
      'Messages the stream holds past the last one the copy applied, as the stream last said',
      cluster((s) => s.behind),
    );
    gauge(
      'gossip_cluster_publishes_in_flight',
      'Publishes sent to the stream and not settled yet',
      cluster((s) => s.inFlight),
    );
    counter(
      'gossip_cluster_conflicts_total',
      'Compare-and-sets that found another last sequence for their id (racing writes, or a guess out of date)',
      cluster((s) => s.conflicts),
    );
    counter(
      'gossip_cluster_repairs_total',
      'Newer values given back to the stream after an older write replaced them',
      cluster((s) => s.repairs),
    );
    counter(
      'gossip_cluster_stream_failures_total',
      'Stream requests that failed without an answer (a timeout, no leader), retried until the deadline',
      cluster((s) => s.streamFailures),
    );
    counter(
      'gossip_cluster_fanout_gaps_total',
      'Times the copy went back to reading the stream: a gap in what the edges handed over, a reconnect, a stall',
      cluster((s) => s.fanoutGaps),
    );
  }
  // The registry is made at the first scrape: its event-loop monitor has sampled nothing
  // yet, and would answer that scrape with a mean of NaN and a minimum of 2^63 ns. Two of
  // its samples first.
  await new Promise((resolve) => setTimeout(resolve, 2 * EVENT_LOOP_PRECISION_MS + 5));
  return registry;
}
