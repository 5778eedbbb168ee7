import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { reapAtExit } from './child-reaper.js';
import { freePorts } from './free-ports.js';

export interface NatsClusterOptions {
  /** Nodes in the cluster; 3 is the least that keeps a JetStream quorum through one lost node [3]. */
  size?: number;
  /** The folder that holds one folder per node (`n0`, `n1`, …: its store and its log); `close()` keeps one given here [a new temporary one, which `close()` and a failed start remove]. */
  dir?: string;
  /** The nats-server to run (2.9.10 is the one tested) [GOSSIP_NATS_SERVER, else `nats-server` on PATH, else /usr/sbin/nats-server]. */
  binary?: string;
  /** How long `start()` and `restart()` wait for the nodes to be healthy before they give up [20 s]. */
  timeoutMs?: number;
  /** More flags for every node, about its clients (`--user`, `--pass`, `--tls`, …) [none]. */
  args?: string[];
}

/** What `leadStream` needs of a NATS client: a request and its answer's JSON (nats.js's connection has both). */
export interface NatsRequester {
  request(subject: string, payload: string, opts: { timeout: number }): Promise<{ json<T>(): T }>;
}

/** What a node's `/healthz` answered. */
export interface NatsHealth {
  ok: boolean;
  /** The HTTP status, 0 when the monitoring port did not answer. */
  status: number;
  /** The body, or why there is none. */
  body: string;
}

/** Where Debian's package puts it: not on a normal user's PATH. */
const DEBIAN_NATS_SERVER = '/usr/sbin/nats-server';
const DEFAULT_SIZE = 3;
const DEFAULT_TIMEOUT_MS = 20_000;
/** Short: an election is seconds long, so a poll costs little and a ready cluster is seen at once. */
const POLL_MS = 50;
/** One probe of a node that hangs must not eat the whole deadline. */
const PROBE_TIMEOUT_MS = 1_000;
/** A node that dies at once (a port another process took in the meantime) is started again this many times in all. */
const START_ATTEMPTS = 3;
/** What an error shows of a node's log: its end, where the reason is. */
const LOG_TAIL_CHARS = 4_000;
const LOG_FILE = 'nats-server.log';
/** Step-downs `leadStream` asks for before it gives up: each elects one of the others at random. */
const LEAD_ATTEMPTS = 30;

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The nats-server that runs unless told otherwise: GOSSIP_NATS_SERVER, else the first on PATH, else Debian's. */
export async function natsServerBinary(): Promise<string> {
  const fromEnv = process.env.GOSSIP_NATS_SERVER;
  if (fromEnv) return fromEnv;
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    if (folder && (await isExecutable(join(folder, 'nats-server')))) return join(folder, 'nats-server');
  }
  return DEBIAN_NATS_SERVER;
}

interface NodePorts {
  client: number;
  route: number;
  monitor: number;
}

/** One run of a node's process: a restart is a new life. */
interface Life {
  child: ChildProcess;
  /** Resolves at the exit, or at a spawn that failed (which has none). */
  exited: Promise<void>;
  ended: boolean;
}

/**
 * A real JetStream cluster of nats-server processes on loopback, routed to one another,
 * each with its own store and log under `dir`. `start()` and `restart()` resolve only once
 * JetStream can serve: every node's `/healthz` is ok and all agree on a running meta leader.
 */
export class NatsCluster {
  /** `nats://127.0.0.1:<port>` per node, in node order. */
  readonly urls: string[];
  /** `http://127.0.0.1:<port>` of each node's monitoring listener (`/healthz`, `/jsz`, `/varz`). */
  readonly monitorUrls: string[];
  /** The server names, `n0`, `n1`, …: JetStream's peers are known by them. */
  readonly names: string[];
  readonly dir: string;
  readonly #madeDir: boolean;
  readonly #binary: string;
  readonly #timeoutMs: number;
  readonly #ports: NodePorts[];
  readonly #lives: (Life | undefined)[];
  #closed = false;
  #args: string[] = [];

  private constructor(dir: string, madeDir: boolean, binary: string, timeoutMs: number, ports: NodePorts[]) {
    this.dir = dir;
    this.#madeDir = madeDir;
    this.#binary = binary;
    this.#timeoutMs = timeoutMs;
    this.#ports = ports;
    this.#lives = ports.map(() => undefined);
    this.urls = ports.map((p) => `nats://127.0.0.1:${p.client}`);
    this.monitorUrls = ports.map((p) => `http://127.0.0.1:${p.monitor}`);
    this.names = ports.map((_, i) => `n${i}`);
  }

  /**
   * Starts every node and resolves when the cluster is ready. A node that exits during the
   * start (most likely a chosen port taken by another process before it bound it) gets the
   * whole cluster started again on new ports, a few times; a timeout does not. On failure
   * everything is killed, a folder made here is removed, and the error carries the logs' ends.
   */
  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const size = options.size ?? DEFAULT_SIZE;
    if (!Number.isInteger(size) || size < 1) throw new Error(`size must be a positive integer, not ${size}`);
    const binary = options.binary ?? (await natsServerBinary());
    if (!(await isExecutable(binary)))
      throw new Error(`nats-server not found at ${binary}: install it, or set GOSSIP_NATS_SERVER or the binary option`);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const madeDir = options.dir === undefined;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'nats-cluster-')));
    for (let attempt = 1; ; attempt++) {
      // every port is known before any node starts: each node's routes name all the others
      const flat = await freePorts(size * 3);
      const ports = Array.from({ length: size }, (_, i) => ({
        client: flat[i * 3] as number,
        route: flat[i * 3 + 1] as number,
        monitor: flat[i * 3 + 2] as number,
      }));
      const cluster = new NatsCluster(dir, madeDir, binary, timeoutMs, ports);
      cluster.#args = options.args ?? [];
      try {
        const all = cluster.names.map((_, i) => i);
        for (const i of all) await cluster.#spawn(i);
        // every node, not the default of those running: one that already died must fail the start
        await cluster.waitReady(all);
        return cluster;
      } catch (e) {
        const someExited = cluster.names.some((_, i) => !cluster.running(i));
        await cluster.#killAll();
        if (someExited && attempt < START_ATTEMPTS) continue;
        if (madeDir) await rm(dir, { recursive: true, force: true });
        throw e;
      }
    }
  }

  url(i: number): string {
    return this.urls[this.#index(i)] as string;
  }

  /** The folder of node `i`: its store (`store/jetstream`) and its log. */
  nodeDir(i: number): string {
    return join(this.dir, this.names[this.#index(i)] as string);
  }

  /** The file node `i`'s stdout and stderr go to, every life appended after the last. */
  logFile(i: number): string {
    return join(this.nodeDir(i), LOG_FILE);
  }

  /** The process id of node `i`'s current (or last) life; undefined before its first. */
  pid(i: number): number | undefined {
    return this.#lives[this.#index(i)]?.child.pid;
  }

  running(i: number): boolean {
    const life = this.#lives[this.#index(i)];
    return life !== undefined && !life.ended;
  }

  /** SIGKILL node `i` (a crash: no goodbye to its peers) and resolve once it has exited. */
  async kill(i: number): Promise<void> {
    await this.#signal(i, 'SIGKILL');
  }

  /** SIGTERM node `i` (a clean shutdown, without lame-duck mode) and resolve once it has exited. */
  async stop(i: number): Promise<void> {
    await this.#signal(i, 'SIGTERM');
  }

  /**
   * Starts node `i` again on the same client, route and monitoring ports and the same store,
   * so its peers take it back with its data; resolves once it is healthy and knows a running
   * meta leader. Rejects when it is still running: kill or stop it first.
   */
  async restart(i: number): Promise<void> {
    const index = this.#index(i);
    if (this.#closed) throw new Error('this cluster is closed');
    if (this.running(index))
      throw new Error(`node ${this.names[index]} is running: kill(${index}) or stop(${index}) first`);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#spawn(index);
        await this.waitReady([index]);
        return;
      } catch (e) {
        const exited = !this.running(index);
        await this.kill(index);
        // the ports are the node's for good; one taken for a moment (an outgoing connection's) is free again soon
        if (exited && attempt < START_ATTEMPTS) continue;
        throw e;
      }
    }
  }

  /** What node `i`'s `/healthz` answers: on 2.9.10 it is ok only once JetStream is current with a meta leader. */
  async healthz(i: number): Promise<NatsHealth> {
    try {
      const res = await fetch(`${this.monitorUrls[this.#index(i)]}/healthz`, {
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      const body = await res.text();
      let status: unknown;
      try {
        status = (JSON.parse(body) as { status?: unknown }).status;
      } catch {
        status = undefined; // not JSON: not ok
      }
      return { ok: res.status === 200 && status === 'ok', status: res.status, body };
    } catch (e) {
      return { ok: false, status: 0, body: String((e as Error).cause ?? e) };
    }
  }

  /**
   * The meta leader node `i` believes in, from `/jsz`; undefined while there is none or the
   * node does not answer. After the leader dies its followers go on naming it for seconds,
   * until their election timeout: compare the name with `running()`.
   */
  async metaLeader(i: number): Promise<string | undefined> {
    try {
      const res = await fetch(`${this.monitorUrls[this.#index(i)]}/jsz`, {
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      if (res.status !== 200) return undefined;
      const jsz = (await res.json()) as { meta_cluster?: { leader?: unknown } };
      const leader = jsz.meta_cluster?.leader;
      return typeof leader === 'string' && leader !== '' ? leader : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Moves the Raft leader of the JetStream stream `stream` to node `i`: the leader is asked
   * to step down until an election lands there. A publisher on a node that does not lead
   * its stream pays a hop more per publish, so measurements compared side by side place
   * their streams' leaders alike. `nc` is any connected NATS client (nats.js's fits):
   * this package speaks no NATS protocol of its own.
   */
  async leadStream(nc: NatsRequester, stream: string, i: number): Promise<void> {
    const name = this.names[this.#index(i)] as string;
    const leader = async (): Promise<string | undefined> => {
      try {
        const m = await nc.request(`$JS.API.STREAM.INFO.${stream}`, '', { timeout: PROBE_TIMEOUT_MS });
        return m.json<{ cluster?: { leader?: string } }>().cluster?.leader || undefined;
      } catch {
        return undefined;
      }
    };
    for (let attempt = 0; attempt < LEAD_ATTEMPTS; attempt++) {
      const was = await leader();
      if (was === name) return;
      await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, '', { timeout: 5_000 }).catch(() => undefined);
      // until another leader is elected (or the wait is over)
      for (let t = 0; t < 100; t++) {
        await delay(POLL_MS * 2);
        const now = await leader();
        if (now !== undefined && now !== was) break;
      }
    }
    throw new Error(`could not move the leader of stream ${stream} to ${name}`);
  }

  /**
   * Resolves with the meta leader's name once every node of `nodes` is healthy and names
   * the same leader, one that is running. Rejects as soon as one of them exits, or after
   * `timeoutMs`, with what each answered last and the end of its log.
   */
  async waitReady(nodes: number[] = this.#runningNodes(), timeoutMs = this.#timeoutMs): Promise<string> {
    const indexes = nodes.map((i) => this.#index(i));
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const exited = indexes.find((i) => !this.running(i));
      if (exited !== undefined) {
        const child = this.#lives[exited]?.child;
        const how = child ? (child.exitCode ?? child.signalCode ?? 'not spawned') : 'not started';
        throw new Error(
          `nats-server ${this.names[exited]} exited (${how}) before it was ready${await this.#logTails([exited])}`,
        );
      }
      const probes = await Promise.all(
        indexes.map(async (i) => ({ i, health: await this.healthz(i), leader: await this.metaLeader(i) })),
      );
      const leader = probes[0]?.leader;
      const leaderRunning = leader !== undefined && this.running(this.names.indexOf(leader));
      if (leaderRunning && probes.every((p) => p.health.ok && p.leader === leader)) return leader;
      if (performance.now() >= deadline) {
        const states = probes
          .map(
            (p) =>
              `${this.names[p.i]}: /healthz ${p.health.status} ${p.health.body.trim()}, meta leader ${p.leader ?? 'none'}`,
          )
          .join('; ');
        throw new Error(
          `nats cluster not ready after ${timeoutMs / 1000} s (${states})${await this.#logTails(indexes)}`,
        );
      }
      await delay(POLL_MS);
    }
  }

  /** Kills every node (SIGKILL: nothing of a test cluster needs a clean shutdown) and removes `dir` if it was made here. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#killAll();
    if (this.#madeDir) await rm(this.dir, { recursive: true, force: true });
  }

  #index(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.names.length)
      throw new Error(`no node ${i}: this cluster has nodes 0 to ${this.names.length - 1}`);
    return i;
  }

  #runningNodes(): number[] {
    return this.names.map((_, i) => i).filter((i) => this.running(i));
  }

  async #signal(i: number, signal: NodeJS.Signals): Promise<void> {
    const life = this.#lives[this.#index(i)];
    if (!life) return;
    if (this.running(i)) life.child.kill(signal);
    await life.exited;
  }

  async #killAll(): Promise<void> {
    await Promise.all(this.names.map((_, i) => this.kill(i)));
  }

  async #spawn(i: number): Promise<void> {
    const name = this.names[i] as string;
    const ports = this.#ports[i] as NodePorts;
    const nodeDir = this.nodeDir(i);
    await mkdir(nodeDir, { recursive: true });
    const routes = this.#ports.map((p) => `nats://127.0.0.1:${p.route}`).join(',');
    // flags are enough on 2.9.10: JetStream clustering needs the server name, the cluster name and the routes;
    // clients know only the servers they are given (a test can put a proxy between one and the cluster)
    const args = [
      ...['--addr', '127.0.0.1', '--port', String(ports.client), '--http_port', String(ports.monitor)],
      '--no_advertise',
      ...this.#args,
      ...['--server_name', name, '--jetstream', '--store_dir', join(nodeDir, 'store')],
      ...['--cluster', `nats://127.0.0.1:${ports.route}`, '--cluster_name', 'gossip-test', '--routes', routes],
    ];
    const log = await open(this.logFile(i), 'a');
    let child: ChildProcess;
    try {
      // a line between lives, so the end of the log is this life's
      await log.write(`--- ${new Date().toISOString()} ${this.#binary} ${args.join(' ')}\n`);
      child = spawn(this.#binary, args, { stdio: ['ignore', log.fd, log.fd], detached: false });
    } finally {
      // the child holds its own copy of the descriptor
      await log.close();
    }
    reapAtExit(child);
    const life: Life = { child, exited: Promise.resolve(), ended: false };
    life.exited = new Promise<void>((resolve) => {
      const done = () => {
        life.ended = true;
        resolve();
      };
      child.once('exit', done);
      child.on('error', () => {
        if (child.pid === undefined) done(); // never spawned: there will be no exit
      });
    });
    this.#lives[i] = life;
  }

  async #logTails(indexes: number[]): Promise<string> {
    const tails = await Promise.all(
      indexes.map(async (i) => {
        const text = await readFile(this.logFile(i), 'utf8').catch((e: Error) => `(no log: ${e.message})`);
        return `\n--- ${this.names[i]} (${this.logFile(i)}), last ${LOG_TAIL_CHARS} chars:\n${text.slice(-LOG_TAIL_CHARS)}`;
      }),
    );
    return tails.join('');
  }
}
