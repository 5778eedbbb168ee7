import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { now as clockNow, GossipError, isEpoch, MAX_ID_BYTES, MIN_TS, newEpoch } from '@gossip/protocol';
import { type PublishOutcome, REPLICATED, type RecordLog, SUPERSEDED } from '@gossip/server';
import { Store, type StoreLogger, type StoreOptions } from '@gossip/store';
import {
  type Consumer,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type MsgRequest,
  RetentionPolicy,
  StorageType,
  type StoredMsg,
  type StreamInfo,
} from '@nats-io/jetstream';
import { type ConnectionOptions, connect, type NatsConnection } from '@nats-io/transport-node';
import type { ClusterAuth } from '../config.js';
import { natsAuth } from './auth.js';
import { decodeFanout, FanoutBatcher } from './fanout.js';
import { Queue } from './fifo.js';
import { loadPosition, POSITION_FILE, type Position, savePosition } from './position.js';
import { DEDUP_WINDOW_MS, StreamError, StreamPublisher, WRONG_LAST_SEQUENCE } from './publisher.js';
import {
  decodeEmit,
  decodeHorizon,
  decodeRecord,
  encodeEmit,
  encodeHorizon,
  encodeRecord,
  type HorizonRecord,
  RECORD_HEADER_BYTES,
} from './record.js';
import { Sequencer } from './sequencer.js';
import { type Subjects, subjects } from './subjects.js';

/** pino-compatible. */
export interface EdgeLogger extends StoreLogger {
  debug(fields: object, message: string): void;
}

export interface EdgeOptions {
  /** NATS server URLs of the cluster. */
  servers: string[];
  /** How the edge proves itself, when the NATS servers ask: a user and password, a token, a credentials file or an nkey seed file. */
  auth?: ClusterAuth;
  /** TLS to NATS: CA, and the edge's own certificate and key for mutual TLS (PEM files). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string } | undefined;
  /** The cluster's name: its stream is `GOSSIP_<name>`. */
  name: string;
  /** Replicas of the stream when this edge creates it. */
  replicas: number;
  /** The edge's data folder: its copy of the log (`copy/`) and its position (`cluster.json`). */
  dataDir: string;
  /** Options of the copy's store, but its folder, epoch and tombstone rule. */
  store: Omit<StoreOptions, 'dir' | 'epoch' | 'tombstoneCutoff' | 'logger'>;
  /** Tombstones older than this (by ts and by the time the stream took them) leave the stream. */
  tombstoneRetentionMs: number;
  log: EdgeLogger;
  /** The edge cannot go on (its copy cannot be brought up to date while it serves it): gossipd stops. */
  onFatal?: (error: unknown) => void;
}

/** An edge's counters and state, for its metrics (docs/CLUSTER.md, "What to monitor"). */
export interface EdgeStats {
  connected: boolean;
  ready: boolean;
  /** The last stream sequence the copy has applied. */
  applied: number;
  /** Messages the stream holds past the last one applied, as the stream last said. */
  behind: number;
  /** Publishes sent to the stream and not yet settled. */
  inFlight: number;
  /** Compare-and-sets that found another last sequence for their id (racing writes, or a guess out of date). */
  conflicts: number;
  /** Newer values given back to the stream after an older write replaced them. */
  repairs: number;
  /** Stream requests that failed without an answer (a timeout, no leader), retried. */
  streamFailures: number;
  /** Times the copy went back to reading the stream: a gap in the fan-out, a reconnect, a stall. */
  fanoutGaps: number;
}

/** What the edge needs of the server in front of it. */
export interface EdgeServer {
  relay(transient: boolean, id: string, ts: bigint, data: Uint8Array): void;
}

/** The folder under the edge's data folder that holds its copy of the log. */
const COPY_DIR = 'copy';

/** Room in a NATS message beyond a record's id and data: its head and the headers' names and numbers. */
const NATS_ROOM_BYTES = 512;

const STALE: PublishOutcome = Object.freeze({ status: 'stale', durability: 'none' }) as PublishOutcome;
const STALE_NOW = Promise.resolve(STALE);
/** How often the position is saved while the copy moves. */
const POSITION_EVERY_MS = 200;
/** Backoff between attempts while the cluster cannot be reached: doubled from the first to the last. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const NS_PER_MS = 1_000_000n;
/** How long a publish keeps trying while the cluster does not answer, before it is refused. */
const PUBLISH_DEADLINE_MS = 10_000;
/** How long the edge waits for one answer of the cluster. */
const REQUEST_TIMEOUT_MS = 2_000;
const DEDUP_WINDOW_NS = DEDUP_WINDOW_MS * 1_000_000;
/**
 * A tombstone leaves the stream no sooner than this after the stream took it, whatever
 * the retention: by then the stream has long forgotten the message id of the id's first
 * publish (expected sequence 0, which a publish after the removal uses again; it keeps
 * ids up to about twice its window), and every edge that follows the stream has checked
 * the horizon several times over (#checkHorizon).
 */
const REMOVE_AFTER_MS = 20_000;
/** How often an edge reads the cluster's horizon (#checkHorizon), at most. */
const CHECK_EVERY_MAX_MS = 5_000;
/** How often the follower is watched, and how long a stall it is given before it is made again. */
const WATCH_EVERY_MS = 500;
const STALL_MS = 2_000;
/**
 * How long fan-out entries wait for one before them that no edge handed over (a lost
 * answer, an edge that died, a write of something else than an edge) before the edge
 * asks the stream for it.
 */
const GAP_MS = 50;
/** A gap of at most this many messages is read message by message from the stream's leader; a longer one by a consumer. */
const GAP_READ_MAX = 32;
/** Messages the consumer hands the copy's store ahead of what it has taken, at most (a catch-up's memory). */
const APPLY_AHEAD_MAX = 8_192;
/** Bytes of fan-out entries held past a gap, at most: past it the consumer reads the stream. */
const EARLY_MAX_BYTES = 64 * 1024 * 1024;
/**
 * A consumer the edge made and lost (a crash) is removed by the servers after this long
 * (one nats.js made again after a reset of its own keeps nats.js's 5 min).
 */
const CONSUMER_INACTIVE_MS = 10_000;

interface Pending {
  readonly id: string;
  readonly ts: bigint;
  /** Its publish count: the second half of its record's tag (record.ts), its key in #pending. */
  readonly count: number;
  readonly subject: string;
  readonly body: Uint8Array;
  readonly deadline: number;
  attempts: number;
  /** The stream sequence the stream took it at, once it said so. */
  seq: number;
  /** When the stream said so (performance.now()). */
  takenAt: number;
  resolve(outcome: PublishOutcome): void;
  reject(error: Error): void;
}

/** A cluster error, coded for the client's ack. */
function unavailable(why: string): GossipError {
  return new GossipError(
    'GOSSIP_ERR_CLUSTER_UNAVAILABLE',
    `the cluster cannot take the publish now (${why}): nothing was written; retry, or use another edge`,
  );
}

/**
 * While the stream has no leader (an election after its leader's server died), a publish
 * is retried and the stream asked again at most this far apart: the election itself takes
 * nats-server 4 to 9 s, and a longer wait would only add to it.
 */
const STREAM_BACKOFF_MAX_MS = 1_000;

function backoff(attempt: number, max = BACKOFF_MAX_MS): number {
  const ms = Math.min(max, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 16));
  return ms / 2 + Math.random() * (ms / 2);
}

/**
 * A gossipd edge of a cluster (docs/CLUSTER.md): the log of record is a JetStream stream
 * replicated across a NATS cluster, one subject per id whose last message is the id's
 * newest value. The edge keeps a copy of it in its own store, applied in the stream's
 * order, from which the server serves replay, snapshot, fetch and the horizon; it takes
 * its clients' publishes to the stream with a compare-and-set on the id's last sequence,
 * so that the newest ts wins exactly whichever edge takes them; and it carries emits to
 * and from the other edges over core NATS.
 */
export class ClusterEdge implements RecordLog {
  readonly #o: EdgeOptions;
  readonly #log: EdgeLogger;
  readonly #subjects: Subjects;
  readonly #copyDir: string;
  /** The first half of the tag of every record this edge writes (record.ts). */
  readonly #edgeId = randomBytes(4).readUInt32BE(0);
  #count = 0;
  #store: Store | undefined;
  #server: EdgeServer | undefined;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #publisher: StreamPublisher | undefined;
  #epoch = '';
  /** The last stream sequence the store has taken (settled); the position. */
  #applied = 0;
  #savedApplied = 0;
  /** The sequence the copy must reach before the edge serves: the stream's last at start. */
  #catchUpTo = 0;
  #caughtUp = false;
  /** Connected to NATS. */
  #connected = false;
  /** The stream did not answer lately: publishes are refused until it does. */
  #streamDown: string | undefined;
  #closed = false;
  /** Publishes this edge sent and has not settled, by their count. */
  readonly #pending = new Map<number, Pending>();
  /** Publishes the stream took, by the order it said so, until the copy is past their sequence. */
  readonly #taken = new Queue<Pending>();
  /** Last stream sequence per id, as far as this edge knows: the compare-and-set's guess. */
  readonly #seqs = new Map<string, number>();
  /** Tombstones the copy holds, by id, with their ts: candidates for removal from the stream past the retention (#reap). */
  readonly #tombstones = new Map<string, bigint>();
  #lastApply: Promise<unknown> = Promise.resolve();
  #behind = 0;
  #conflicts = 0;
  #repairCount = 0;
  #streamFailures = 0;
  #timers: NodeJS.Timeout[] = [];
  /** The NATS connection options that prove the edge (made once: they keep the last credentials that parsed). */
  readonly #auth: Partial<ConnectionOptions>;
  #consuming: Promise<void> | undefined;
  #stopConsuming: (() => void) | undefined;
  /**
   * The order the copy applies the stream in, from the consumer or the fan-out
   * (docs/CLUSTER.md, "Following the stream").
   */
  readonly #order: Sequencer;
  #fanout: FanoutBatcher | undefined;

  constructor(o: EdgeOptions) {
    this.#o = o;
    this.#log = o.log;
    this.#subjects = subjects(o.name);
    this.#copyDir = join(o.dataDir, COPY_DIR);
    this.#auth = natsAuth(o.auth, (message) => this.#log.warn({}, `cluster edge: ${message}`));
    this.#order = new Sequencer(
      {
        apply: (e, pending) => this.#apply(e.seq, e.subject, e.body, pending, e.id),
        readFrom: async (seq) => {
          const query = { seq, next_by_subj: '>' } as unknown as MsgRequest;
          const m = await (this.#jsm as JetStreamManager).streams.getMessage(this.#subjects.stream, query);
          return m && { seq: m.seq, subject: m.subject, body: m.data };
        },
      },
      { gapMs: GAP_MS, gapReadMax: GAP_READ_MAX, earlyMaxBytes: EARLY_MAX_BYTES },
    );
  }

  /**
   * Starts the edge: opens its copy at once when it has one (served while the cluster is
   * away, publishes refused), or waits for the cluster for a first copy, whose identity
   * is the cluster's. `close()` ends the wait.
   */
  async start(): Promise<void> {
    await this.#open();
    if (this.#closed) throw unavailable('the edge was closed while it started');
  }

  get store(): Store {
    return this.#store as Store;
  }

  /** Why the edge is not ready, for /readyz; undefined when it is. */
  notReadyReason(): string | undefined {
    if (this.ready) return undefined;
    if (this.#closed) return 'closing';
    if (!this.#connected) return 'cluster unreachable';
    if (this.#streamDown !== undefined) return 'cluster stream unavailable';
    return 'catching up with the cluster';
  }

  /** Caught up with the stream and connected: what /readyz says. */
  get ready(): boolean {
    return this.#caughtUp && this.#connected && this.#streamDown === undefined && !this.#closed;
  }

  stats(): EdgeStats {
    return {
      connected: this.#connected,
      ready: this.ready,
      applied: this.#applied,
      behind: this.#behind,
      inFlight: this.#pending.size,
      conflicts: this.#conflicts,
      repairs: this.#repairCount,
      streamFailures: this.#streamFailures,
      fanoutGaps: this.#order.gaps,
    };
  }

  /** The position: the last stream sequence applied to the copy. */
  get applied(): number {
    return this.#applied;
  }

  /** The server the copy's new messages are relayed to. */
  attach(server: EdgeServer): void {
    this.#server = server;
  }

  async #open(): Promise<void> {
    const { dataDir } = this.#o;
    await mkdir(dataDir, { recursive: true });
    const entries = await readdir(dataDir);
    if (entries.includes('gossip.meta')) {
      throw new GossipError(
        'GOSSIP_ERR_CONFIG',
        `${dataDir} holds a single-node log; a cluster edge needs a data folder of its own (--data-dir)`,
      );
    }
    const stream = this.#subjects.stream;
    let position = await loadPosition(dataDir);
    if (position?.stream !== stream) position = undefined;
    // With a copy, one try: an edge whose cluster is away serves its copy meanwhile
    // (publishes refused) and joins in the background. Without one, the cluster's epoch
    // is needed first: the edge waits for it.
    const joined = await this.#connect(position === undefined ? Number.POSITIVE_INFINITY : 1);
    if (this.#closed) return; // stopped while it waited for the cluster: nothing opened
    if (!joined) {
      await this.#openCopy(position as Position);
      void this.#connect(Number.POSITIVE_INFINITY)
        .then((connected) => (connected ? this.#join(position as Position) : undefined)) // false: closed meanwhile
        .catch((error: unknown) => this.#fatal(error));
      return;
    }
    await this.#ensureStream();
    const epoch = await this.#clusterEpoch();
    const horizon = await this.#clusterHorizon();
    if (position && (epoch !== position.epoch || (horizon !== undefined && horizon.through > position.applied))) {
      // The stream was made anew, or removed tombstones this copy never took: the copy
      // cannot be brought up to date from the stream's tail. It is rebuilt from the stream.
      this.#log.warn(
        { stream, epoch, copyEpoch: position.epoch, applied: position.applied, through: horizon?.through },
        'cluster edge: the copy is out of date beyond the stream; rebuilding it from the stream',
      );
      position = undefined;
    }
    // A new copy cannot miss a tombstone the stream holds now: the id's older values went
    // when it came. Only later ones can slip past it (#checkHorizon).
    let whole = 0;
    if (position === undefined) {
      await rm(this.#copyDir, { recursive: true, force: true });
      position = { stream, epoch, applied: 0 };
      await savePosition(dataDir, position);
      whole = (await (this.#jsm as JetStreamManager).streams.info(stream)).state.last_seq;
    }
    await this.#openCopy(position);
    if (horizon) await this.#takeHorizon(horizon, 0);
    this.#checked = { through: horizon?.through ?? 0, applied: Math.max(this.#applied, whole) };
    this.#follow();
  }

  async #openCopy(p: Position): Promise<void> {
    const store = await Store.open({
      ...this.#o.store,
      dir: this.#copyDir,
      epoch: p.epoch,
      // The copy drops only the tombstones the cluster's horizon covers (docs/CLUSTER.md, "Horizon").
      tombstoneCutoff: () => (store.horizon ?? MIN_TS) + 1n,
      logger: this.#log,
    });
    if (store.epoch !== p.epoch) {
      await store.close();
      throw new GossipError(
        'GOSSIP_ERR_STORE_CORRUPT',
        `${this.#copyDir} holds another log than ${POSITION_FILE} says`,
      );
    }
    this.#store = store;
    this.#epoch = p.epoch;
    this.#applied = this.#savedApplied = p.applied;
    // a saved position never passed a check: it is known whole (#checkHorizon)
    this.#checked = { through: 0, applied: p.applied };
  }

  /**
   * Joins the cluster after serving the copy without it: follows the stream from the
   * position, unless the copy can no longer be brought up to date from it, which this
   * process cannot mend while it serves that copy (onFatal).
   */
  async #join(p: Position): Promise<void> {
    await this.#ensureStream();
    const epoch = await this.#clusterEpoch();
    const horizon = await this.#clusterHorizon();
    if (epoch !== p.epoch || (horizon !== undefined && horizon.through > this.#applied)) {
      throw new GossipError(
        'GOSSIP_ERR_STORE_CORRUPT',
        `the copy in ${this.#copyDir} is out of date beyond the stream ${this.#subjects.stream} ` +
          '(it was made anew, or removed tombstones the copy never took); restart gossipd to rebuild the copy',
      );
    }
    if (horizon) await this.#takeHorizon(horizon, 0);
    this.#checked = { through: horizon?.through ?? 0, applied: this.#applied };
    this.#follow();
  }

  /**
   * The cluster horizon's `through` at the last check that passed, and the position then
   * (#checkHorizon): a position known whole, the furthest one saved.
   */
  #checked = { through: 0, applied: 0 };

  /**
   * Tombstones leave the stream once the retention is past (#reap). An edge that had not
   * taken one by then (cut off from NATS, or behind, for longer than the retention)
   * skips it, and would serve its id as live: when the cluster's horizon has passed the
   * position this edge held at the check before, which is less than the retention ago,
   * its copy cannot be brought up to date from the stream, and the edge stops (onFatal:
   * exit 1); its next start rebuilds the copy (docs/CLUSTER.md, "An edge's copy"). The
   * position saved never passes the one a passing check took, so a stop or a crash before
   * the check that finds a gap cannot hide it.
   */
  async #checkHorizon(): Promise<void> {
    // not before the edge follows the stream: #checked is set just before
    if (this.#closed || this.#failed || this.#checking || !this.#connected || this.#consuming === undefined) return;
    this.#checking = true;
    try {
      // no answer now: asked again soon, not a whole period later
      if (!(await this.#checkOnce())) setTimeout(() => void this.#checkHorizon(), 1_000).unref();
    } finally {
      this.#checking = false;
    }
  }

  /** One read of the horizon and its verdict (#checkHorizon); false when the cluster did not answer. */
  async #checkOnce(): Promise<boolean> {
    const applied = this.#applied;
    let h: HorizonRecord | undefined;
    try {
      h = await this.#clusterHorizon();
    } catch {
      return false;
    }
    if (this.#failed) return true;
    const through = h?.through ?? 0;
    if (through > this.#checked.through && through > this.#checked.applied) {
      this.#fatal(
        new GossipError(
          'GOSSIP_ERR_STORE_CORRUPT',
          `the stream ${this.#subjects.stream} removed tombstones through sequence ${through} that the copy in ` +
            `${this.#copyDir} had not taken (it was at ${this.#checked.applied}); restart gossipd to rebuild the copy`,
        ),
      );
      return true;
    }
    // a position known whole stays so: never moved back (a check that read its `applied` earlier)
    this.#checked = {
      through: Math.max(through, this.#checked.through),
      applied: Math.max(applied, this.#checked.applied),
    };
    return true;
  }

  /** The edge found it cannot go on (#fatal): it says so once, and checks no more. */
  #failed = false;
  #checking = false;

  #fatal(error: unknown): void {
    if (this.#failed) return;
    if (this.#closed) {
      // found while stopping: the position saved holds back, and the next start rebuilds
      this.#failed = true;
      this.#log.warn({ err: error }, 'cluster edge: cannot go on (found while stopping)');
      return;
    }
    this.#failed = true;
    this.#log.error({ err: error }, 'cluster edge: cannot go on');
    this.#o.onFatal?.(error);
  }

  /** Connects to NATS, trying up to `tries` times with backoff; false when it could not. */
  async #connect(tries: number): Promise<boolean> {
    for (let attempt = 0; attempt < tries && !this.#closed; attempt++) {
      try {
        const nc = await connect({
          servers: this.#o.servers,
          ...this.#auth,
          ...(this.#o.tls ? { tls: this.#o.tls } : {}),
          name: `gossipd edge ${this.#subjects.stream}`,
          noEcho: true,
          // no Error (with its stack) made per request: a third of a publish's cost otherwise
          noAsyncTraces: true,
          maxReconnectAttempts: -1,
          // a refused credential (a user JWT that expired before its file was replaced)
          // is tried again at each reconnect, not given up after the second
          ignoreAuthErrorAbort: true,
          reconnectDelayHandler: () => backoff(2),
          timeout: REQUEST_TIMEOUT_MS,
        });
        this.#nc = nc;
        this.#js = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS });
        this.#jsm = await jetstreamManager(nc, { timeout: REQUEST_TIMEOUT_MS, checkAPI: false });
        this.#publisher = new StreamPublisher(nc, REQUEST_TIMEOUT_MS, (error) =>
          this.#log.error({ err: error }, "cluster edge: handling the stream's answer to a publish failed"),
        );
        this.#connected = true;
        this.#log.info({ server: nc.getServer(), servers: this.#o.servers }, 'cluster edge: connected to NATS');
        this.#watch(nc);
        // a subscription error (a permission refused) brings no message
        nc.subscribe(this.#subjects.emit, {
          callback: (e, m) => {
            if (!e) this.#onEmit(m.data);
          },
        });
        nc.subscribe(this.#subjects.fanout, {
          callback: (e, m) => {
            if (!e) this.#onFanout(m.data);
          },
        });
        this.#fanout = new FanoutBatcher(
          (batch) => {
            try {
              nc.publish(this.#subjects.fanout, batch);
            } catch {
              // closed or closing: the other edges read these from the stream
            }
          },
          () => this.#maxPayload() - NATS_ROOM_BYTES,
        );
        return true;
      } catch (error) {
        const wait = backoff(attempt);
        this.#log.warn(
          {
            err: (error as Error).message,
            attempt: attempt + 1,
            retryInMs: Math.round(wait),
            servers: this.#o.servers,
          },
          'cluster edge: cannot reach the cluster; retrying',
        );
        if (attempt + 1 < tries) await sleep(wait);
      }
    }
    return false;
  }

  #watch(nc: NatsConnection): void {
    void (async () => {
      let attempts = 0;
      for await (const s of nc.status()) {
        switch (s.type) {
          case 'disconnect':
            this.#connected = false;
            this.#log.warn({ server: s.server }, 'cluster edge: lost the NATS connection; reconnecting');
            break;
          case 'reconnecting':
            attempts++;
            this.#log.warn({ attempt: attempts }, 'cluster edge: reconnecting to the cluster');
            break;
          case 'reconnect':
            attempts = 0;
            this.#connected = true;
            this.#log.info({ server: s.server }, 'cluster edge: reconnected to the cluster');
            void this.#checkHorizon(); // before the follower has gone far past what it missed
            this.#order.toConsumer(); // what the edges handed over meanwhile never came
            break;
          default:
            break;
        }
      }
    })();
    // The NATS client gives a connection up for good when its authenticator throws or the
    // server closes it in a way it does not retry: the edge connects anew, as at its start.
    void nc.closed().then((error) => {
      if (this.#closed || this.#nc !== nc) return;
      this.#connected = false;
      this.#log.error({ err: error?.message }, 'cluster edge: the NATS client gave its connection up; connecting anew');
      void this.#connect(Number.POSITIVE_INFINITY).then((connected) => {
        if (!connected) return;
        void this.#checkHorizon();
        this.#order.toConsumer(); // what the edges handed over meanwhile never came
      });
    });
  }

  /** Creates the stream if it is missing; one that exists is taken as it is. */
  async #ensureStream(): Promise<void> {
    const jsm = this.#jsm as JetStreamManager;
    const name = this.#subjects.stream;
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        try {
          const info = await jsm.streams.info(name);
          if (info.config.duplicate_window !== DEDUP_WINDOW_NS) {
            // a stream made before the edges named their compare-and-sets: the window they need
            await jsm.streams.update(name, { duplicate_window: DEDUP_WINDOW_NS });
            this.#log.info({ stream: name }, "cluster edge: set the stream's duplicate window");
          }
          return;
        } catch (error) {
          if (!(error instanceof JetStreamApiError) || error.code !== 10059) throw error;
        }
        await jsm.streams.add({
          name,
          subjects: this.#subjects.filters,
          retention: RetentionPolicy.Limits,
          max_msgs_per_subject: 1,
          num_replicas: this.#o.replicas,
          storage: StorageType.File,
          discard: DiscardPolicy.Old,
          allow_direct: true,
          duplicate_window: DEDUP_WINDOW_NS,
        });
        this.#log.info({ stream: name, replicas: this.#o.replicas }, 'cluster edge: created the stream');
        return;
      } catch (error) {
        if (error instanceof JetStreamApiError && error.code === 10058) return; // another edge made it first
        const wait = backoff(attempt);
        this.#log.warn(
          { err: (error as Error).message, attempt: attempt + 1, retryInMs: Math.round(wait) },
          'cluster edge: the cluster has no stream to give yet; retrying',
        );
        await sleep(wait);
      }
    }
  }

  /** The cluster's epoch: written once by the first edge (compare-and-set on an empty subject). */
  async #clusterEpoch(): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        const last = await this.#last(this.#subjects.epoch);
        if (last) {
          const epoch = Buffer.from(last.data).toString('utf8');
          if (isEpoch(epoch)) return epoch;
          // written by something other than an edge: no copy can take it as its identity
          throw new GossipError(
            'GOSSIP_ERR_STORE_CORRUPT',
            `the last message of ${this.#subjects.epoch} in ${this.#subjects.stream} is not an epoch (32 hex digits)`,
          );
        }
        // the compare-and-set of every publish: of edges racing to write it, one is stored
        await (this.#publisher as StreamPublisher).publish(this.#subjects.epoch, Buffer.from(newEpoch()), 0);
      } catch (error) {
        if (error instanceof GossipError) throw error;
        if (error instanceof StreamError && error.code === WRONG_LAST_SEQUENCE) {
          await sleep(backoff(0)); // another edge's went first: read it
          continue;
        }
        if (this.#closed) throw error;
        const wait = backoff(attempt);
        this.#log.warn(
          { err: (error as Error).message, attempt: attempt + 1, retryInMs: Math.round(wait) },
          "cluster edge: cannot read or write the cluster's epoch yet; retrying",
        );
        await sleep(wait);
      }
    }
  }

  async #clusterHorizon(): Promise<HorizonRecord | undefined> {
    const last = await this.#last(this.#subjects.horizon);
    return last ? decodeHorizon(last.data) : undefined;
  }

  /** The stream's last message of `subject`, as its leader holds it; null when it holds none. */
  #last(subject: string): Promise<StoredMsg | null> {
    return (this.#jsm as JetStreamManager).streams.getMessage(this.#subjects.stream, { last_by_subj: subject });
  }

  /** Applies the stream from the position on, for as long as the edge runs. */
  #follow(): void {
    const run = async () => {
      for (let attempt = 0; !this.#closed; attempt++) {
        try {
          if (this.#order.mode === 'fanout') {
            // the edges hand over what the stream takes, until a gap (toConsumer)
            await this.#order.untilConsumer();
            if (this.#closed) return;
          }
          // read at each attempt: a connection NATS closed for good is replaced (#watch)
          const js = this.#js as JetStreamClient;
          const jsm = this.#jsm as JetStreamManager;
          const asked = performance.now();
          const info = await jsm.streams.info(this.#subjects.stream);
          // entries past the stream's end that came before it was asked are none it took
          // (as its leader says: a member answers for a stream without one, from its own state)
          if (info.cluster?.leader) this.#order.dropBeyond(info.state.last_seq, asked);
          if (!this.#caughtUp) {
            this.#catchUpTo = info.state.last_seq;
            if (this.#applied >= this.#catchUpTo) this.#setCaughtUp();
          }
          // wait for what is being applied: the position is where the new consumer starts
          await this.#lastApply.catch(() => undefined);
          this.#order.startAt(this.#applied);
          if (info.state.last_seq <= this.#applied) {
            // nothing to read: what comes next, the edges hand over (subscribed since the connect)
            this.#order.toFanout();
            continue;
          }
          const consumer: Consumer = await js.consumers.get(this.#subjects.stream, {
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: this.#applied + 1,
            inactive_threshold: CONSUMER_INACTIVE_MS,
          });
          if (this.#closed) return;
          const messages = await consumer.consume({ max_messages: 4096 });
          this.#stopConsuming = () => messages.stop();
          for await (const m of messages) {
            attempt = 0;
            // the stream is read no faster than the copy's store takes it: held appends are bounded
            if (
              this.#order.take(m.seq, m.subject, m.data, m.info.pending) &&
              this.#order.dispatched - this.#applied >= APPLY_AHEAD_MAX
            )
              await this.#lastApply.catch(() => undefined);
            if (this.#closed) break;
            if (m.info.pending === 0) {
              // the copy is at the stream's end: from here the edges hand over what it takes
              messages.stop();
              this.#order.toFanout();
              break;
            }
          }
          this.#stopConsuming = undefined;
          // one consumer per gap: removed at once, not left to the servers' inactivity timer
          Promise.resolve()
            .then(() => consumer.delete())
            .catch(() => undefined);
          if (this.#closed) return;
          if (this.#order.mode === 'fanout') continue;
          this.#log.warn({ applied: this.#applied }, "cluster edge: the stream's consumer ended; following again");
        } catch (error) {
          if (this.#closed) return;
          this.#log.warn(
            { err: (error as Error).message, attempt: attempt + 1 },
            'cluster edge: cannot follow the stream; retrying',
          );
        }
        await sleep(backoff(attempt));
      }
    };
    this.#consuming = run();
    this.#timers.push(setInterval(() => void this.#savePosition(), POSITION_EVERY_MS));
    this.#timers.push(setInterval(() => void this.#watchFollowing(), WATCH_EVERY_MS));
    const reapMs = Math.min(60_000, Math.max(1_000, this.#o.tombstoneRetentionMs / 2));
    this.#timers.push(setInterval(() => void this.#reap(), reapMs));
    // far less than the least age of a removed tombstone
    const checkMs = Math.min(CHECK_EVERY_MAX_MS, reapMs);
    this.#timers.push(setInterval(() => void this.#checkHorizon(), checkMs));
  }

  #watchedApplied = -1;
  #watchTicks = 0;

  /**
   * The consumer that follows the stream can stall (after the whole NATS cluster
   * restarted, say) without ending: a publish the stream took then never comes back to
   * the copy. When the copy has not moved for a while and the stream holds more, the
   * consumer is made again from the position.
   */
  async #watchFollowing(): Promise<void> {
    if (this.#closed || !this.#connected || (!this.#stopConsuming && this.#order.mode !== 'fanout')) return;
    this.#retryRepairs();
    const moved = this.#applied !== this.#watchedApplied;
    this.#watchedApplied = this.#applied;
    if (moved) {
      this.#watchTicks = 0;
      return;
    }
    const head = this.#taken.peek();
    let behind = head !== undefined && performance.now() - head.takenAt > STALL_MS;
    if (!behind && ++this.#watchTicks * WATCH_EVERY_MS >= STALL_MS) {
      this.#watchTicks = 0;
      let info: StreamInfo;
      try {
        // an idle edge learns here, as a busy one from its publishes, that the stream cannot take writes
        info = await this.#streamWithLeader();
      } catch (error) {
        if (!this.#closed) this.#streamFailing((error as Error).message);
        return; // nothing to follow now
      }
      behind = info.state.last_seq > this.#applied && this.#applied === this.#watchedApplied;
    }
    if (!behind) return;
    if (this.#order.mode === 'fanout') {
      // the stream took what no edge handed over, and nothing after it came to show the gap
      this.#order.toConsumer();
      return;
    }
    this.#log.warn({ applied: this.#applied }, "cluster edge: the stream's consumer stalled; following again");
    this.#stopConsuming?.();
  }

  /** Ids whose newer value this edge gives back to the stream, until the stream brings one back. */
  readonly #repairs = new Map<string, { ts: bigint; at: number; running: boolean }>();

  /** Repairs the stream has not confirmed for a while, and none runs for: started again from the id's last known sequence. */
  #retryRepairs(): void {
    const before = performance.now() - STALL_MS;
    for (const [id, r] of this.#repairs) {
      if (r.running || r.at > before) continue;
      r.at = performance.now();
      this.#repair(id, this.#seqs.get(id) ?? 0, true);
    }
  }

  #setCaughtUp(): void {
    if (this.#caughtUp) return;
    this.#caughtUp = true;
    this.#log.info({ applied: this.#applied, ids: this.store.stats().ids }, 'cluster edge: caught up with the stream');
    void this.#checkHorizon();
    this.#learnTombstones().catch((error: unknown) =>
      this.#log.warn({ err: (error as Error).message }, "cluster edge: could not list the copy's tombstones"),
    );
  }

  /**
   * One message of the stream, in the stream's order: `pending`, how many the stream
   * holds past it (as far as the edge knows). `ownId`: the id of this edge's own publish,
   * whose body is no view of a read buffer.
   */
  #apply(seq: number, subject: string, body: Uint8Array, pending: number, ownId?: string): void {
    const id = ownId ?? this.#subjects.idOf(subject);
    const store = this.store;
    if (id === undefined) {
      // a meta record: the horizon (the epoch was read at the join)
      if (subject === this.#subjects.horizon) {
        const h = decodeHorizon(body);
        if (h) this.#lastApply = this.#takeHorizon(h, seq);
      }
      this.#settledThrough(seq, pending);
      return;
    }
    const rec = decodeRecord(body);
    if (
      rec === undefined ||
      rec.ts === MIN_TS || // the wire's "no message": no publish has it
      Buffer.byteLength(id) > MAX_ID_BYTES ||
      rec.data.byteLength > store.maxDataBytes
    ) {
      this.#log.warn({ seq, subject }, 'cluster edge: skipped a stream message no edge wrote');
      this.#settledThrough(seq, pending);
      return;
    }
    this.#seqs.set(id, seq);
    const repair = this.#repairs.get(id);
    if (repair !== undefined && rec.ts >= repair.ts) this.#repairs.delete(id);
    if (rec.data.byteLength === 0) this.#tombstones.set(id, rec.ts);
    else this.#tombstones.delete(id);
    const mine = rec.edge === this.#edgeId ? this.#pending.get(rec.count) : undefined;
    if (mine) this.#pending.delete(rec.count);
    // A copy, unless this edge made it: another's bytes are a view of the connection's
    // read buffer. Made in Node's buffer pool (the store and the broadcast hold it no
    // longer than their next write): a buffer of its own per message cost a catch-up about
    // 8 % of its time.
    const data = ownId === undefined ? Buffer.from(rec.data) : rec.data;
    const { ts } = rec;
    // Newest ts wins by the stream's order: every copy applies the same messages in the
    // same order with the same rule, so they agree, whatever the stream took.
    const held = store.tsOf(id);
    this.#lastApply = store.append(id, ts, data).then(
      (result) => {
        if (mine) {
          if (result.status === 'accepted') mine.resolve(REPLICATED);
          else if (held === ts) this.#settleEqual(mine, id, data);
          else mine.resolve(STALE);
        } else if (result.status === 'accepted') this.#server?.relay(false, id, ts, data);
        // An older ts landed after a newer one (nats-server 2.9's compare-and-set can let
        // two racing writes through), and the stream, which keeps one message per
        // subject, now holds the older: it is given the newer back (docs/CLUSTER.md).
        if (held !== undefined && held > ts) this.#repair(id, seq);
        this.#settledThrough(seq, pending);
      },
      (error: unknown) => {
        mine?.reject(error as Error);
        this.#log.error(
          { err: error, seq },
          'cluster edge: the copy could not take a message (a store error); it follows the stream again from its position, which later messages may have passed',
        );
        if (this.#order.mode === 'fanout') this.#order.toConsumer();
        else this.#stopConsuming?.();
      },
    );
  }

  /**
   * Settles a publish whose ts the copy already holds: accepted (not broadcast again)
   * when the copy holds its very value, which an edge's repair gave back to the stream
   * ahead of it; stale when it holds another value of the same ts.
   */
  #settleEqual(p: Pending, id: string, data: Uint8Array): void {
    this.store.get(id).then(
      (m) => p.resolve(m && Buffer.from(m.data).equals(data) ? SUPERSEDED : STALE),
      () => p.resolve(STALE),
    );
  }

  /**
   * Settles a publish the stream took and replaced before the copy reached it: accepted,
   * not broadcast, when the copy holds a ts as new or newer for its id; when it holds an
   * older one, an older write replaced it, and it is sent again (#conflict).
   */
  #supersede(p: Pending): void {
    if (!this.#pending.has(p.count)) return;
    const held = this.store.tsOf(p.id);
    if (held === undefined || held < p.ts) {
      this.#conflict(p);
      return;
    }
    this.#pending.delete(p.count);
    p.resolve(SUPERSEDED);
  }

  /**
   * Gives the stream back the copy's value of `id`, which a message with an older ts
   * replaced at `seq`: published with a compare-and-set until the stream's last message
   * for the id is as new as it, by this edge or another. `again`: a repair not confirmed
   * yet, started over (#retryRepairs), not counted twice.
   */
  #repair(id: string, seq: number, again = false): void {
    // one run per id at a time: it reads the id's last message at each attempt
    if (this.#repairs.get(id)?.running) return;
    const held = this.store.tsOf(id);
    if (held === undefined) return;
    if (!again) this.#repairCount++;
    // Done only when the stream brings a value as new back to this copy (#apply): an
    // answer that the stream holds one is not taken for it (#retryRepairs).
    const r = { ts: held, at: performance.now(), running: true };
    this.#repairs.set(id, r);
    const run = async () => {
      const m = await this.store.get(id);
      if (!m) {
        if (this.#repairs.get(id) === r) this.#repairs.delete(id);
        return;
      }
      r.ts = m.ts;
      const subject = this.#subjects.idSubject(id);
      // count 0: no publish of a client, so no pending entry matches it
      const body = encodeRecord(m.ts, this.#edgeId, 0, m.data);
      let expected = seq;
      // Until the stream holds a value as new: a repair given up would leave an edge that
      // never saw the newer value (and every new edge) on the older one.
      for (let attempt = 0; !this.#closed; attempt++) {
        try {
          this.#handOver(await (this.#publisher as StreamPublisher).publish(subject, body, expected), subject, body);
          this.#log.debug(
            { id, seq, ts: String(m.ts) },
            'cluster edge: gave the stream back the newest value of an id',
          );
          return;
        } catch (error) {
          if (!(error instanceof StreamError && error.code === WRONG_LAST_SEQUENCE) || attempt >= 3) {
            await sleep(backoff(attempt));
          }
          if (attempt > 0 && attempt % 10 === 0) {
            this.#log.warn(
              { id, attempt, err: (error as Error).message },
              "cluster edge: still giving an id's newest value back to the stream",
            );
          }
          try {
            const last = await this.#last(subject);
            const rec = last ? decodeRecord(last.data) : undefined;
            if (rec !== undefined && rec.ts >= m.ts) return; // the stream holds as new
            expected = last?.seq ?? 0;
          } catch {
            // no answer now: the next attempt asks again
          }
        }
      }
    };
    run()
      .catch((error: unknown) =>
        this.#log.warn(
          { err: (error as Error).message, id },
          "cluster edge: could not give the stream back an id's value",
        ),
      )
      .finally(() => {
        r.running = false;
      });
  }

  // --- the fan-out: following the stream without reading it back ---------------------

  /**
   * The stream took `body` at `seq` (its answer to this edge): for this copy and the
   * other edges'. `id`: the id of an edge's own publish, whose body is its own buffer.
   */
  #handOver(seq: number, subject: string, body: Uint8Array, id?: string): void {
    this.#fanout?.add(seq, subject, body);
    this.#order.arrive({ seq, subject, body, id });
  }

  /** A batch another edge handed over (fanout.ts). */
  #onFanout(batch: Uint8Array): void {
    if (this.#closed) return;
    const entries = decodeFanout(batch);
    if (entries === undefined) {
      // not an edge's: what it may have named, the stream has (a gap, then the consumer)
      this.#log.debug({ bytes: batch.byteLength }, 'cluster edge: ignored a fan-out batch no edge wrote');
      return;
    }
    for (const e of entries) {
      if (e.subject === this.#subjects.horizon || this.#subjects.isIdSubject(e.subject)) this.#order.arrive(e);
    }
  }

  #settledThrough(seq: number, pending: number): void {
    if (seq > this.#applied) this.#applied = seq;
    this.#behind = pending;
    const taken = this.#taken;
    while (taken.length > 0 && (taken.peek() as Pending).seq <= this.#applied)
      this.#supersede(taken.shift() as Pending);
    if (!this.#caughtUp && (pending === 0 || this.#applied >= this.#catchUpTo)) this.#setCaughtUp();
  }

  async #savePosition(): Promise<void> {
    const applied = Math.min(this.#applied, this.#checked.applied);
    if (applied === this.#savedApplied || this.#closed || !this.#store || this.#saving) return;
    this.#saving = true;
    try {
      await this.#store.flush();
      await savePosition(this.#o.dataDir, { stream: this.#subjects.stream, epoch: this.#epoch, applied });
      this.#savedApplied = applied;
    } catch (error) {
      this.#log.error({ err: error }, 'cluster edge: could not save the position');
    } finally {
      this.#saving = false;
    }
  }

  #saving = false;

  async #takeHorizon(h: HorizonRecord, seq: number): Promise<void> {
    await this.store.raiseHorizon(h.horizon);
    if (seq > 0) this.#log.info({ horizon: String(h.horizon), seq }, 'cluster edge: the cluster raised its horizon');
  }

  // --- publishes -------------------------------------------------------------------

  append(id: string, ts: bigint, data: Uint8Array): Promise<PublishOutcome> {
    if (!this.ready) {
      return Promise.reject(
        unavailable(
          !this.#connected
            ? 'no connection to the cluster'
            : this.#streamDown !== undefined
              ? `the stream does not answer: ${this.#streamDown}`
              : 'the edge is still catching up',
        ),
      );
    }
    if (!this.#fitsNats(id, data)) {
      // never storable: refused as such, not retried as if the stream were away
      return Promise.reject(
        new GossipError(
          'GOSSIP_ERR_DATA_TOO_LARGE',
          `the cluster takes messages of at most ${this.#maxPayload()} bytes (its NATS servers' max_payload); ` +
            `this one has ${data.byteLength} bytes of data`,
        ),
      );
    }
    // The copy holds a prefix of the stream, whose ts only rise per id: an equal or newer
    // ts here is one the stream holds or held (docs/CLUSTER.md, "Newest ts wins").
    const local = this.store.tsOf(id);
    if (local !== undefined && local >= ts) return STALE_NOW;
    // 1 to 2^32 - 1, then round again (0 is a repair's)
    this.#count = (this.#count % 0xffffffff) + 1;
    const count = this.#count;
    return new Promise<PublishOutcome>((resolve, reject) => {
      const p: Pending = {
        id,
        ts,
        count,
        subject: this.#subjects.idSubject(id),
        body: encodeRecord(ts, this.#edgeId, count, data),
        deadline: performance.now() + PUBLISH_DEADLINE_MS,
        attempts: 0,
        seq: 0,
        takenAt: 0,
        resolve,
        reject,
      };
      this.#pending.set(count, p);
      this.#send(p, this.#seqs.get(id) ?? 0);
    });
  }

  /** One attempt: publishes if the id's last sequence is still `expected`. */
  #send(p: Pending, expected: number): void {
    p.attempts++;
    (this.#publisher as StreamPublisher).send(p.subject, p.body, expected, (error, seq) => {
      if (this.#closed) return; // close() refuses what waits
      if (error === undefined) {
        // Settled when the stream brings it back to the copy (#apply): then the server
        // broadcasts it and acks it, in the copy's order. Unless a newer publish of the
        // id replaced it in the stream before the copy got that far: then it is settled
        // once the copy is past its sequence (#settledThrough).
        if (this.#streamDown !== undefined) this.#streamUp();
        if (this.#pending.has(p.count)) this.#took(p, seq);
        this.#handOver(seq, p.subject, p.body, p.id);
        return;
      }
      if (!this.#pending.has(p.count)) return;
      if (error instanceof StreamError && error.code === WRONG_LAST_SEQUENCE) {
        this.#conflicts++;
        this.#conflict(p, expected);
        return;
      }
      // The same compare-and-set again, until the deadline: if the first attempt was
      // stored after all, this one fails it, and the conflict finds the edge's own tag.
      this.#later(p, error, () => this.#send(p, expected));
    });
  }

  /**
   * After a failure the stream may mend (no leader, a timeout): runs `next` after the
   * backoff while `p` waits and its deadline allows, else refuses `p` with the cause.
   */
  #later(p: Pending, error: unknown, next: () => void, outage = true): void {
    const why = error instanceof Error ? error.message : String(error);
    if (outage) {
      this.#streamFailures++;
      this.#streamFailing(why);
    }
    const wait = backoff(p.attempts, STREAM_BACKOFF_MAX_MS);
    if (performance.now() + wait > p.deadline || this.#closed) {
      this.#pending.delete(p.count);
      p.reject(unavailable(why));
      return;
    }
    setTimeout(() => {
      if (this.#pending.has(p.count)) next();
    }, wait);
  }

  /** The stream took `p` at `seq`: settled when the copy gets there (#apply), or past it (#settledThrough). */
  #took(p: Pending, seq: number): void {
    p.seq = seq;
    p.takenAt = performance.now();
    if (seq <= this.#applied) this.#supersede(p);
    else this.#taken.push(p);
  }

  /**
   * The id's last sequence was not the guess (`tried`, when a compare-and-set failed),
   * or the copy passed `p` without it: the stream's last message for the id decides.
   */
  #conflict(p: Pending, tried?: number): void {
    this.#last(p.subject).then(
      (last) => {
        if (!this.#pending.has(p.count)) return;
        const lastSeq = last?.seq ?? 0;
        if (tried !== undefined && lastSeq === tried) {
          // The stream still ends where this publish expected, yet refused it: it remembers
          // a publish with the same expectation (its message id) that it no longer holds.
          // Tried again with backoff until it forgets it, or the deadline.
          // (no outage: the stream answers, for this id alone)
          this.#later(
            p,
            new Error('the stream remembers a publish with the same expectation'),
            () => this.#send(p, lastSeq),
            false,
          );
          return;
        }
        if (last === null) {
          this.#send(p, 0);
          return;
        }
        const rec = decodeRecord(last.data);
        if (rec !== undefined && rec.edge === this.#edgeId && rec.count === p.count) {
          // an earlier attempt was stored (its answer was lost): settled as any taken publish
          if (last.seq > this.#applied || p.seq !== last.seq) {
            this.#took(p, last.seq);
            this.#handOver(last.seq, p.subject, last.data);
          } else {
            this.#pending.delete(p.count);
            p.resolve(SUPERSEDED);
          }
          return;
        }
        this.#seqs.set(p.id, last.seq);
        if (p.seq > 0 && last.seq > p.seq && rec !== undefined && rec.ts >= p.ts) {
          // Taken at p.seq, then replaced by a write as new or newer before the copy read it:
          // it was the newest when taken, so accepted (and superseded), once the copy holds
          // that write too (read-your-writes on this edge).
          this.#took(p, last.seq);
          this.#order.arrive({ seq: last.seq, subject: p.subject, body: last.data });
          return;
        }
        if (
          rec !== undefined &&
          rec.ts === p.ts &&
          Buffer.from(rec.data).equals(p.body.subarray(RECORD_HEADER_BYTES))
        ) {
          // its own value, given back to the stream by an edge's repair: it was taken
          this.#pending.delete(p.count);
          p.resolve(SUPERSEDED);
          return;
        }
        if (rec !== undefined && rec.ts >= p.ts) {
          this.#pending.delete(p.count);
          p.resolve(STALE);
          return;
        }
        this.#send(p, last.seq);
      },
      (error: unknown) => {
        // Never sent again without knowing the id's last sequence: read it again.
        if (!this.#pending.has(p.count)) return;
        p.attempts++;
        this.#later(p, error, () => this.#conflict(p, tried));
      },
    );
  }

  #streamFailing(why: string): void {
    if (this.#streamDown !== undefined) return;
    this.#streamDown = why;
    this.#log.warn({ err: why }, 'cluster edge: the stream does not answer; publishes are refused until it does');
    void this.#probe();
  }

  #streamUp(): void {
    if (this.#streamDown === undefined) return;
    this.#streamDown = undefined;
    this.#log.info({}, 'cluster edge: the stream answers again');
  }

  /**
   * The stream's info, when it has a leader to take writes. Without one (an election
   * after its leader's server died, or a lost quorum), a member answers from its own
   * state: that is no stream that answers, and this throws. (A stream of a server
   * outside any cluster names that server.)
   */
  async #streamWithLeader(): Promise<StreamInfo> {
    const info = await (this.#jsm as JetStreamManager).streams.info(this.#subjects.stream);
    if (info.cluster !== undefined && !info.cluster.leader) {
      throw new Error('the stream has no leader (an election, or its quorum is lost)');
    }
    return info;
  }

  /** While the stream does not answer, or has no leader: asks it again, with backoff, logging each try. */
  async #probe(): Promise<void> {
    for (let attempt = 0; this.#streamDown !== undefined && !this.#closed; attempt++) {
      const wait = backoff(attempt, STREAM_BACKOFF_MAX_MS);
      await sleep(wait);
      try {
        await this.#streamWithLeader();
        this.#streamUp();
        return;
      } catch (error) {
        if (this.#streamDown === undefined) return; // a publish found the stream back meanwhile
        this.#streamDown = (error as Error).message;
        // every try for the first ten, then one in ten: a lost quorum may last
        if (attempt >= 10 && attempt % 10 !== 0) continue;
        this.#log.warn(
          { err: this.#streamDown, attempt: attempt + 1, retryInMs: Math.round(wait) },
          'cluster edge: the stream still does not answer; retrying',
        );
      }
    }
  }

  // --- emits -----------------------------------------------------------------------

  emit(id: string, ts: bigint, data: Uint8Array): void {
    if (!this.#connected || !this.#nc) return; // transient: never queued for later
    // past NATS's max_payload it reaches this edge's clients alone (docs/CLUSTER.md)
    if (!this.#fitsNats(id, data)) return;
    try {
      this.#nc.publish(this.#subjects.emit, encodeEmit(id, ts, data));
    } catch {
      // the connection closing under it: transient, dropped like one sent while away
    }
  }

  /** The NATS servers' largest message (`max_payload`, 1 MiB unless set). */
  #maxPayload(): number {
    return this.#nc?.info?.max_payload ?? 1024 * 1024;
  }

  /**
   * Whether the record or the emit of `id` and `data` fits a NATS message (headers and
   * body): the data, the id (in an emit's body, or in base64 in a record's message id),
   * and room for the rest.
   */
  #fitsNats(id: string, data: Uint8Array): boolean {
    return data.byteLength + 2 * Buffer.byteLength(id) + NATS_ROOM_BYTES <= this.#maxPayload();
  }

  #onEmit(body: Uint8Array): void {
    const e = decodeEmit(body);
    if (!e || e.ts === MIN_TS || Buffer.byteLength(e.id) > MAX_ID_BYTES || e.data.byteLength > this.store.maxDataBytes)
      return;
    this.#server?.relay(true, e.id, e.ts, Buffer.from(e.data));
  }

  // --- tombstones and the horizon -----------------------------------------------------

  /**
   * Removes from the stream the tombstones past the retention, by ts and by the time the
   * stream took them, once the cluster's horizon covers them (docs/CLUSTER.md, "Horizon").
   * Any edge may do it; they agree through the horizon's compare-and-set, and a removal
   * that another edge made first is no error.
   */
  async #reap(): Promise<void> {
    if (!this.ready || this.#reaping) return;
    this.#reaping = true;
    try {
      const cutoff = clockNow() - BigInt(Math.round(this.#o.tombstoneRetentionMs)) * NS_PER_MS;
      const jsm = this.#jsm as JetStreamManager;
      const stream = this.#subjects.stream;
      const chosen: { id: string; seq: number; ts: bigint }[] = [];
      for (const [id, ts] of this.#tombstones) {
        if (ts >= cutoff) continue;
        const last = await this.#last(this.#subjects.idSubject(id));
        const rec = last ? decodeRecord(last.data) : undefined;
        if (!last || !rec || rec.data.byteLength > 0) {
          this.#tombstones.delete(id);
          continue;
        }
        // taken by the stream within the retention: a lagging edge may not have it yet
        if (BigInt(last.time.getTime()) * NS_PER_MS >= cutoff) continue;
        if (Date.now() - last.time.getTime() < REMOVE_AFTER_MS) continue; // (#checkHorizon)
        // a newer tombstone this copy has not applied yet: not this edge's to remove now
        if (last.seq > this.#applied) continue;
        chosen.push({ id, seq: last.seq, ts: rec.ts });
        if (chosen.length >= 10_000) break;
      }
      if (chosen.length === 0) return;
      let horizon = MIN_TS;
      let through = 0;
      for (const c of chosen) {
        if (c.ts > horizon) horizon = c.ts;
        if (c.seq > through) through = c.seq;
      }
      await this.#raiseClusterHorizon({ horizon, through });
      for (const c of chosen) {
        try {
          await jsm.streams.deleteMessage(stream, c.seq, false);
        } catch (error) {
          if (!(error instanceof JetStreamApiError) || (error.code !== 10043 && error.code !== 10057)) throw error;
        }
        this.#tombstones.delete(c.id);
      }
      this.#log.info(
        { removed: chosen.length, horizon: String(horizon) },
        'cluster edge: removed tombstones from the stream',
      );
    } catch (error) {
      this.#log.warn({ err: (error as Error).message }, 'cluster edge: tombstone removal failed; tried again later');
    } finally {
      this.#reaping = false;
    }
  }

  #reaping = false;

  /** Raises the cluster's horizon record to at least `h`, by compare-and-set on its subject. */
  async #raiseClusterHorizon(h: HorizonRecord): Promise<void> {
    while (!this.#closed) {
      const last = await this.#last(this.#subjects.horizon);
      const current = last ? decodeHorizon(last.data) : undefined;
      const next: HorizonRecord = {
        horizon: current && current.horizon > h.horizon ? current.horizon : h.horizon,
        through: current && current.through > h.through ? current.through : h.through,
      };
      if (current && current.horizon === next.horizon && current.through === next.through) return;
      try {
        // the compare-and-set of every publish, message id included: one of two racing is stored
        const body = encodeHorizon(next);
        this.#handOver(
          await (this.#publisher as StreamPublisher).publish(this.#subjects.horizon, body, last?.seq ?? 0),
          this.#subjects.horizon,
          body,
        );
        return;
      } catch (error) {
        if (!(error instanceof StreamError) || error.code !== WRONG_LAST_SEQUENCE) throw error;
        await sleep(backoff(0)); // another edge's went first: read it again
      }
    }
  }

  /** Tombstones of the copy that came before this process: candidates for removal too. */
  async #learnTombstones(): Promise<void> {
    for await (const batch of this.store.replayBatches(null)) {
      for (const m of batch)
        if (m.data.byteLength === 0 && !this.#tombstones.has(m.id)) this.#tombstones.set(m.id, m.ts);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#order.close();
    this.#stopConsuming?.();
    await this.#consuming?.catch(() => undefined);
    await this.#lastApply.catch(() => undefined);
    this.#publisher?.close();
    for (const p of this.#pending.values()) p.reject(unavailable('the edge is closing'));
    this.#pending.clear();
    while (this.#saving) await sleep(10);
    if (this.#store) {
      // a last check, so that a clean stop saves all it applied and the next start replays nothing
      if (this.#consuming !== undefined && this.#connected && !this.#failed) await this.#checkOnce();
      const applied = Math.min(this.#applied, this.#checked.applied);
      await this.#store.flush().catch(() => undefined);
      await savePosition(this.#o.dataDir, { stream: this.#subjects.stream, epoch: this.#epoch, applied }).catch(
        () => undefined,
      );
      await this.#store.close();
    }
    await this.#nc?.close().catch(() => undefined);
  }
}
