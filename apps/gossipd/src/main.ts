import { fstatSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Socket } from 'node:net';
import { isatty } from 'node:tty';
import { belowNodeFloor, GossipError, PROTOCOL_VERSION } from '@gossip/protocol';
import { GossipServer, RefusalLog, TokenSet } from '@gossip/server';
import { type RecoveryProgress, Store } from '@gossip/store';
import { type Logger, pino } from 'pino';
import type { Registry } from 'prom-client';
import type { ClusterEdge } from './cluster/edge.js';
import { type Config, checkExposure, helpText, parseConfig } from './config.js';
import { createMetrics } from './metrics.js';

/** apps/gossipd/package.json's version, written in by the build (tsup.config.ts). */
declare const __GOSSIP_VERSION__: string;
const VERSION = __GOSSIP_VERSION__;

/** How long after it listens gossipd compiles the replay's code (docs/STORAGE.md, "Replay"). */
const WARM_AFTER_MS = 1_000;

/**
 * A signal this soon after the first is the same one, delivered twice: one Ctrl-C reaches
 * gossipd from the terminal and again from a script runner that forwards it (pnpm, npm).
 */
const REPEATED_SIGNAL_MS = 500;

/** The most JSON log output held for a reader that does not keep up: past it, lines are dropped. */
const LOG_BUFFER_BYTES = 16 * 1024 * 1024;

/** How long a stopped gossipd waits for its last log lines to be taken before it exits anyway. */
const LOG_DRAIN_MS = 2_000;

/**
 * Makes fd 1 non-blocking when it is a pipe or a socket, as libuv makes the pipes it
 * opens. Blocking, a log write to a reader that has stopped reading waits in a libuv
 * thread for good, and that thread then holds the process at exit, whatever asked for
 * the exit. Non-blocking, the write fails with EAGAIN and pino tries it again later, so a
 * stopped gossipd can give up on its last lines and exit. The socket is only the means:
 * nothing writes through it.
 */
function nonBlockingStdout(): void {
  try {
    const stat = fstatSync(1);
    if (stat.isFIFO() || stat.isSocket()) new Socket({ fd: 1, readable: false, writable: true }).unref();
  } catch {
    // no fd 1 (closed by whoever started gossipd): pino's writes fail the same either way
  }
}

/** Exit codes scripts can rely on. */
const EXIT = { ok: 0, failed: 1, config: 2 } as const;

async function main(): Promise<void> {
  const tooOld = belowNodeFloor('gossipd');
  if (tooOld) {
    process.stderr.write(`gossipd: ${tooOld}\n`);
    process.exitCode = EXIT.failed;
    return;
  }
  let config: Config;
  try {
    // isatty(1), not process.stdout.isTTY: making that stream costs a millisecond, and
    // JSON logs do not use it (pino writes to fd 1 itself, below).
    const parsed = parseConfig(process.argv.slice(2), process.env, isatty(1));
    if (parsed.kind === 'help') {
      process.stdout.write(helpText(VERSION));
      return;
    }
    if (parsed.kind === 'version') {
      process.stdout.write(`gossipd ${VERSION} (protocol ${PROTOCOL_VERSION})\n`);
      return;
    }
    config = parsed.config;
  } catch (error) {
    process.stderr.write(`gossipd: ${(error as Error).message}\n`);
    process.exitCode = EXIT.config;
    return;
  }

  // pino-pretty is run only for pretty logs (a TTY, --log-format pretty): its modules
  // cost milliseconds of every start that does not need them. JSON logs go to fd 1 as
  // pino's default destination does, without touching process.stdout, through a buffer
  // of at most LOG_BUFFER_BYTES: when whatever reads gossipd's output stops reading, the
  // lines it cannot take are dropped and counted (gossip_log_lines_dropped_total) rather
  // than held in memory without end.
  let logLinesDropped = 0;
  let log: Logger;
  /** Gives up on what the log output has not taken, before an exit (a reader that stopped must not hold it). */
  let abandonLog: () => void = () => undefined;
  if (config.logFormat === 'pretty') {
    log = pino({ level: config.logLevel }, (await import('pino-pretty')).default({ colorize: true, sync: true }));
  } else {
    nonBlockingStdout();
    let exiting = false;
    const destination = pino.destination({
      dest: 1,
      sync: false,
      maxLength: LOG_BUFFER_BYTES,
      // a full pipe is waited for, but not while exiting
      retryEAGAIN: () => !exiting,
    });
    destination.on('drop', () => {
      logLinesDropped++;
    });
    abandonLog = () => {
      exiting = true;
      try {
        destination.flushSync(); // what a reading reader takes at once
      } catch {
        // a reader that stopped: what is left is lost
      }
      // destroyed, pino's own flush at exit skips it (it would wait on the pipe for ever)
      destination.destroy();
    };
    log = pino({ level: config.logLevel }, destination);
  }

  let store: Store | undefined;
  /** The store being opened (recovered): a stop meanwhile waits for it, then closes it. */
  let opening: Promise<Store> | undefined;
  let edge: ClusterEdge | undefined;
  let server: GossipServer | undefined;
  let admin: Server | undefined;
  let ready = false;
  let stopping: Promise<void> | undefined;
  let stoppedAt = 0;
  /**
   * The log lines still buffered get a moment to be taken, then the process exits. A
   * reader that has stopped reading would otherwise hold it forever (docs/OPERATIONS.md,
   * "Logs"): in the pending write, then in pino's flush at exit, which the destroy skips.
   */
  const exitAfterLogDrain = () => {
    setTimeout(() => {
      abandonLog();
      process.exit();
    }, LOG_DRAIN_MS).unref();
  };

  const stop = (signal: string) => {
    if (stopping && performance.now() - stoppedAt < REPEATED_SIGNAL_MS) return;
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting at once');
      abandonLog();
      process.exit(EXIT.failed);
    }
    stoppedAt = performance.now();
    log.info({ signal }, 'stopping: no new connections, flushing and fsyncing');
    stopping = (async () => {
      ready = false;
      try {
        await server?.close();
        // an edge closes its copy's store itself, after its last applied message (and ends
        // its start, which may wait for the cluster); a store still recovering is closed
        // once it is open
        // (one that fails to open is the start's failure: it says so, and sets the exit code)
        let failedToOpen = false;
        if (edge === undefined && opening !== undefined) {
          try {
            store = await opening;
          } catch {
            failedToOpen = true;
          }
        }
        await (edge ?? store)?.close();
        if (!failedToOpen) log.info('stopped cleanly');
      } catch (error) {
        log.error({ err: error }, 'error while stopping');
        process.exitCode = EXIT.failed;
      }
      admin?.close();
      admin?.closeAllConnections();
      exitAfterLogDrain();
    })();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  try {
    // Before anything is opened or created: a refused start leaves no data folder behind.
    checkExposure(config);
    let adminAuthFailures = 0;
    // at most 10 lines a second, as the server's refusals (docs/OPERATIONS.md, "Logs")
    const adminAuthLog = new RefusalLog(log);
    // Made on the first scrape: prom-client's modules and default metrics cost milliseconds
    // of start-up. A failure stays cached and each scrape answers 500 with it (admin.ts).
    let metrics: Promise<Registry> | undefined;
    const registry = () => {
      metrics ??= createMetrics(
        () => server,
        () => store,
        () => adminAuthFailures,
        () => logLinesDropped,
        config.cluster.length > 0 ? () => edge?.stats() : undefined,
      );
      return metrics;
    };
    if (config.adminPort !== null) {
      // Loaded only when the admin listener is on, as node:http with it.
      const { startAdmin } = await import('./admin.js');
      const started = await startAdmin(config.adminHost, config.adminPort, registry, {
        isReady: () => ready && (edge === undefined || edge.ready),
        notReadyReason: () => (ready ? (edge?.notReadyReason() ?? 'ready') : edge ? 'starting' : 'recovering'),
        compact: async () => {
          if (!store || !ready) throw new Error('not ready: the store is recovering');
          return await store.compact();
        },
        tokens: new TokenSet(config.tokens),
        onAuthFailure: (remote) => {
          adminAuthFailures++;
          adminAuthLog.write('warn', () => ({ component: 'admin', remote }), 'admin auth failed');
        },
      });
      admin = started.server;
      log.info(
        { host: started.address.address, port: started.address.port },
        `admin listening on http://${started.address.address}:${started.address.port} (/healthz, /readyz, /metrics, POST /compact)`,
      );
    }

    let lastProgress = 0;
    const t0 = Date.now();
    const storeOptions = {
      // Warmed after it listens (WARM_AFTER_MS): spawn to listening is what a restart waits for.
      warm: false,
      fsync: config.fsync,
      fsyncIntervalMs: config.fsyncIntervalMs,
      segmentBytes: config.segmentSize,
      maxDataBytes: config.maxData,
      compactThreshold: config.compactThreshold,
      onRecoveryProgress: (p: RecoveryProgress) => {
        if (Date.now() - lastProgress < 1000) return;
        lastProgress = Date.now();
        log.info({ ...p, elapsedMs: Date.now() - t0 }, 'recovering');
      },
    };
    if (stopping) return; // a signal while the admin listener started: nothing to open
    if (config.cluster.length > 0) {
      // Loaded only for an edge: the NATS client costs milliseconds of every start that does not use it.
      const { ClusterEdge } = await import('./cluster/edge.js');
      edge = new ClusterEdge({
        servers: config.cluster,
        auth: config.clusterAuth,
        tls: config.clusterTls,
        name: config.clusterName,
        replicas: config.clusterReplicas,
        dataDir: config.dataDir,
        store: storeOptions,
        tombstoneRetentionMs: config.tombstoneRetentionMs,
        log: log.child({ component: 'cluster' }),
        onFatal: () => {
          process.exitCode = EXIT.failed;
          stop('cluster');
        },
      });
      await edge.start();
      if (stopping) return; // its close ended the start (it may have waited for the cluster)
      store = edge.store;
    } else {
      opening = Store.open({
        ...storeOptions,
        dir: config.dataDir,
        tombstoneRetentionMs: config.tombstoneRetentionMs,
        logger: log.child({ component: 'store' }),
      });
      store = await opening;
    }
    if (stopping) return;

    server = new GossipServer({
      store,
      host: config.host,
      port: config.port,
      tokens: config.tokens,
      allowInsecure: config.insecure,
      legacy: config.legacy,
      legacyWithTokens: config.legacyWithTokens,
      ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
      helloTimeoutMs: config.helloTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      pingIntervalMs: config.pingIntervalMs,
      maxOutboundBytes: config.maxOutbound,
      maxSkewMs: config.maxSkewMs,
      maxFetchIds: config.maxFetchIds,
      maxPrefixes: config.maxPrefixes,
      ...(config.maxFrame === undefined ? {} : { maxFrameBytes: config.maxFrame }),
      ...(config.tlsCert && config.tlsKey
        ? {
            tls: {
              cert: readFileSync(config.tlsCert),
              key: readFileSync(config.tlsKey),
              ...(config.tlsCa ? { ca: readFileSync(config.tlsCa) } : {}),
            },
          }
        : {}),
      logger: log.child({ component: 'server' }),
      serverName: `gossipd/${VERSION}`,
      ...(edge ? { recordLog: edge } : {}),
    });
    edge?.attach(server);
    const address = await server.listen();
    ready = true;
    const scheme = config.tlsCert ? 'gossips' : 'gossip';
    log.info(
      {
        host: address.address,
        port: address.port,
        tls: Boolean(config.tlsCert),
        auth: config.tokens.length > 0,
        legacy: config.legacy,
        dataDir: config.dataDir,
        fsync: config.fsync,
        ...(edge ? { cluster: config.cluster, clusterName: config.clusterName, applied: edge.applied } : {}),
        epoch: store.epoch,
        ids: store.stats().ids,
        maxConnections: server.options.maxConnections,
      },
      `gossipd ${VERSION} listening on ${scheme}://${address.address}:${address.port}`,
    );
    // The replay's code is compiled once the clients of a restart, which reconnect at
    // once, have been served: warming it sooner only competes with them for the CPU.
    const [opened, serving] = [store, server];
    setTimeout(() => {
      opened.warm();
      serving.warm();
    }, WARM_AFTER_MS).unref();
    if (config.legacy && config.legacyWithTokens && config.tokens.length > 0) {
      log.warn(
        'the original gossip protocol is served without auth (--legacy-with-tokens): ' +
          'anyone who reaches the port can read and write through it',
      );
    }
  } catch (error) {
    if (stopping && edge !== undefined) {
      // what a stop during the start ended (an edge reading the cluster), not a failure
      log.info({ err: (error as Error).message }, 'stopped before it had started');
      return;
    }
    const code = error instanceof GossipError ? error.code : undefined;
    log.fatal({ err: error, code }, `gossipd could not start: ${(error as Error).message}`);
    await (edge ?? store)?.close().catch(() => undefined);
    admin?.close();
    process.exitCode = code === 'GOSSIP_ERR_INSECURE' || code === 'GOSSIP_ERR_CONFIG' ? EXIT.config : EXIT.failed;
    // as after a stop: a log reader that has stopped reading does not hold the exit
    exitAfterLogDrain();
  }
}

void main();
