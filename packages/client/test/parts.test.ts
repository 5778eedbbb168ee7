import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AckStatus, Durability, FrameEncoder, FrameKind, GossipError, type WelcomeFrame } from '@gossip/protocol';
import { EventEmitter } from 'eventemitter3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat } from '../src/heartbeat.js';
import {
  type ClientMessage,
  type ClientState,
  GossipState,
  type MessageSource,
  type MessageSourceEvents,
  type ReplaySink,
} from '../src/index.js';
import { Outbox, type OutboxLink } from '../src/outbox.js';

// The parts behind the GossipClient façade, each through its narrow interface.

afterEach(() => {
  vi.useRealTimers();
});

describe('heartbeat', () => {
  function host() {
    const pings: number[] = [];
    const stales: GossipError[] = [];
    return { pings, stales, ping: (n: number) => void pings.push(n), stale: (e: GossipError) => void stales.push(e) };
  }

  it('heartbeat - pings every interval and goes stale one interval after a ping nothing answered (K3)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const h = host();
    const beat = new Heartbeat({ ping: h.ping, stale: h.stale }, 1000);
    beat.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.pings).toEqual([1]);
    beat.heard();
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.pings).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(999);
    expect(h.stales).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.stales.map((e) => e.code)).toEqual(['GOSSIP_ERR_TIMEOUT']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('heartbeat - cancel leaves no timer, an interval of 0 starts none, and its timer is unref’d', async () => {
    const h = host();
    const beat = new Heartbeat({ ping: h.ping, stale: h.stale }, 60_000);
    const spy = vi.spyOn(globalThis, 'setTimeout');
    beat.start();
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    spy.mockRestore();
    expect(timer.hasRef()).toBe(false);
    beat.cancel();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    new Heartbeat({ ping: h.ping, stale: h.stale }, 0).start();
    expect(vi.getTimerCount()).toBe(0);
    const again = new Heartbeat({ ping: h.ping, stale: h.stale }, 10);
    again.start();
    again.cancel();
    expect(vi.getTimerCount()).toBe(0);
  });
});

/** A link whose connection a test opens and drops by hand. */
function fakeLink(): OutboxLink & { isOpen: boolean; written: () => ReturnType<FrameEncoder['take']> } {
  const encoder = new FrameEncoder();
  const link = {
    isOpen: false,
    get open() {
      return link.isOpen;
    },
    welcome: undefined as WelcomeFrame | undefined,
    encoder,
    flush: () => undefined,
    written: () => encoder.take(),
  };
  return link;
}

describe('outbox', () => {
  it('outbox - publishes wait while closed, go out on opened(), and one in flight at a drop goes again, retried', async () => {
    const link = fakeLink();
    const outbox = new Outbox(link, {});
    const first = outbox.publish('a', Buffer.from('1'), { ts: 1n });
    expect(outbox.queued).toBe(1);
    link.isOpen = true;
    outbox.opened();
    expect(outbox.queued).toBe(0);
    expect(outbox.busy).toBe(true);
    outbox.dropped(new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'gone'));
    expect(outbox.queued).toBe(1);
    outbox.opened();
    // reqId 1 went out first; its retry is reqId 2.
    outbox.ack({
      kind: FrameKind.Ack,
      reqId: 2,
      status: AckStatus.Stale,
      durability: Durability.None,
      code: null,
      message: '',
    });
    expect(await first).toEqual({ status: 'stale', durability: 'none', ts: 1n, retried: true });
    expect(outbox.busy).toBe(false);
  });

  it('outbox - a drop fails the fetches waiting, and closed() fails what is queued', async () => {
    const link = fakeLink();
    link.isOpen = true;
    const outbox = new Outbox(link, {});
    const fetched = outbox.fetch(['a', 'b'], {});
    outbox.dropped(new GossipError('GOSSIP_ERR_IO', 'reset'));
    await expect(fetched).rejects.toMatchObject({
      code: 'GOSSIP_ERR_CONNECTION_CLOSED',
      cause: { code: 'GOSSIP_ERR_IO' },
    });
    link.isOpen = false;
    const queued = outbox.publish('a', Buffer.from('1'), {});
    outbox.closed(new GossipError('GOSSIP_ERR_CLIENT_CLOSED', 'closed'));
    await expect(queued).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
    expect(outbox.queued).toBe(0);
  });
});

/** A MessageSource a test drives by hand: no client, no socket. */
class FakeSource implements MessageSource<string> {
  state: ClientState = 'ready';
  readonly events = new EventEmitter<MessageSourceEvents<string>>();
  sinks: ReplaySink<string>[] = [];
  stopped = 0;

  on<E extends keyof MessageSourceEvents<string>>(event: E, listener: MessageSourceEvents<string>[E]): this {
    this.events.on(event, listener as never);
    return this;
  }

  off<E extends keyof MessageSourceEvents<string>>(event: E, listener?: MessageSourceEvents<string>[E]): this {
    this.events.off(event, listener as never);
    return this;
  }

  replay(sink: ReplaySink<string>): () => void {
    this.sinks.push(sink);
    return () => {
      this.stopped++;
    };
  }

  live(id: string, ts: bigint, value?: string): void {
    this.events.emit('message', msg(id, ts, value, false));
  }
}

function msg(id: string, ts: bigint, value: string | undefined, replayed: boolean): ClientMessage<string> {
  const data = Buffer.from(value ?? '');
  return { id, ts, value, data, deleted: value === undefined, transient: false, replayed };
}

describe('state view over a message source', () => {
  it('state view - made on an idle or connecting source it asks for no replay: the first replay fills it', () => {
    for (const state of ['idle', 'connecting', 'closed'] as const) {
      const source = new FakeSource();
      source.state = state;
      const view = new GossipState(source);
      expect(source.sinks, state).toHaveLength(0);
      expect(view.catchingUp, state).toBe(false);
    }
  });

  it('state view - made late it asks for a replay and applies it with live messages by ts: no old entry wins over a live delete or update', () => {
    for (const state of ['replaying', 'ready', 'reconnecting'] as const) {
      const source = new FakeSource();
      source.state = state;
      const view = new GossipState(source);
      const synced: number[] = [];
      view.on('synced', () => synced.push(view.size));
      expect(source.sinks, state).toHaveLength(1);
      expect(view.catchingUp).toBe(true);
      const sink = source.sinks[0] as ReplaySink<string>;
      sink.message(msg('a', 10n, 'a1', true));
      // Live, while the catch-up runs: b is deleted and c updated after the snapshot was taken.
      source.live('b', 20n);
      source.live('c', 30n, 'c2');
      source.live('d', 25n, 'd1');
      // The client's own replay-done is not the view's: it is not whole yet.
      source.events.emit('synced', { count: 0, snapshot: false, newestTs: 30n });
      expect(synced).toEqual([]);
      sink.message(msg('b', 10n, 'b1', true));
      sink.message(msg('c', 10n, 'c1', true));
      sink.done();
      expect(synced).toEqual([3]);
      expect(view.catchingUp).toBe(false);
      expect(view.toMap()).toEqual(
        new Map([
          ['a', 'a1'],
          ['c', 'c2'],
          ['d', 'd1'],
        ]),
      );
      // Then it follows the source alone; a late sink message is ignored.
      sink.message(msg('z', 99n, 'late', true));
      source.live('a', 40n);
      expect(view.has('a')).toBe(false);
      expect(view.has('z')).toBe(false);
    }
  });

  it('state view - a resync on the source during the catch-up stops it: the source snapshot is the truth and its end syncs the view', () => {
    const source = new FakeSource();
    const view = new GossipState(source);
    const sink = source.sinks[0] as ReplaySink<string>;
    sink.message(msg('gone', 10n, 'x', true));
    source.events.emit('resync', { reason: 'horizon', horizon: 5n });
    expect(source.stopped).toBe(1);
    expect(view.catchingUp).toBe(false);
    sink.message(msg('stale', 11n, 'y', true));
    source.events.emit('message', msg('kept', 12n, 'k', true));
    let synced = 0;
    view.on('synced', () => synced++);
    source.events.emit('synced', { count: 1, snapshot: true, newestTs: 12n });
    expect(synced).toBe(1);
    expect(view.toMap()).toEqual(new Map([['kept', 'k']]));
  });

  it('state view - a failed catch-up is an error event; detach stops a running one', () => {
    const source = new FakeSource();
    const view = new GossipState(source);
    const errors: string[] = [];
    view.on('error', (e) => errors.push(e.code));
    source.sinks[0]?.failed(new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'gave up'));
    expect(errors).toEqual(['GOSSIP_ERR_CONNECTION_CLOSED']);
    expect(view.catchingUp).toBe(false);
    const other = new GossipState(source);
    other.detach();
    expect(source.stopped).toBe(1);
    expect(source.events.listenerCount('message')).toBe(1);
  });
});

describe('state view with prefixes over a message source', () => {
  it('state view - a scoped view keeps its ids, is stopped catching up only by a resync that covers it, and a prefix snapshot drops only under its prefix', () => {
    const source = new FakeSource();
    const replays: unknown[] = [];
    const replay = source.replay.bind(source);
    source.replay = (sink, options?: unknown) => {
      replays.push(options);
      return replay(sink);
    };
    const view = new GossipState(source, { prefix: 'flags/' });
    expect(replays).toEqual([{ prefix: 'flags/' }]);
    const synced: number[] = [];
    view.on('synced', () => synced.push(view.size));
    const sink = source.sinks[0] as ReplaySink<string>;
    sink.message(msg('flags/a', 1n, 'a', true));
    sink.message(msg('presence/p', 1n, 'p', true));
    sink.message(msg('flags/x/1', 1n, 'x1', true));
    sink.message(msg('flags/x/2', 1n, 'x2', true));
    // Disjoint, or narrower than the view: the catch-up goes on.
    source.events.emit('resync', { reason: 'full', horizon: null, prefix: 'presence/' });
    source.events.emit('resync', { reason: 'epoch', horizon: null, prefix: 'flags/x/' });
    expect(source.stopped).toBe(0);
    expect(view.catchingUp).toBe(true);
    // The snapshot of flags/x/: x1 comes again, older, and wins as the first word; x2 does not come.
    source.events.emit('message', msg('flags/x/1', 0n, 'x1-snap', true));
    source.events.emit('synced', { count: 1, snapshot: true, newestTs: 1n, prefix: 'flags/x/' });
    expect(view.toMap()).toEqual(
      new Map([
        ['flags/a', 'a'],
        ['flags/x/1', 'x1-snap'],
      ]),
    );
    expect(synced).toEqual([]); // still catching up
    sink.done();
    expect(synced).toEqual([2]);
    // A resync of a prefix that covers the view: its snapshot is the truth for all of it.
    source.events.emit('resync', { reason: 'horizon', horizon: 1n, prefix: 'fl' });
    source.events.emit('message', msg('flags/b', 3n, 'b', true));
    source.events.emit('synced', { count: 1, snapshot: true, newestTs: 3n, prefix: 'fl' });
    expect(view.toMap()).toEqual(new Map([['flags/b', 'b']]));
    // The end of a disjoint prefix's replay is not the view's.
    source.events.emit('synced', { count: 0, snapshot: false, newestTs: 3n, prefix: 'presence/' });
    expect(synced).toEqual([2, 1]);
  });

  it('state view - a source that does not cover the prefix refuses the view; one without covers() is taken to cover all', () => {
    const source = new FakeSource();
    source.state = 'idle';
    expect(() => new GossipState(source, { prefix: 'a/' })).not.toThrow();
    (source as MessageSource<string>).covers = (prefix) => prefix.startsWith('b/');
    expect(() => new GossipState(source, { prefix: 'a/' })).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_NOT_SUBSCRIBED' }),
    );
    expect(() => new GossipState(source, { prefix: 'b/c' })).not.toThrow();
    expect(() => new GossipState(source, { prefix: 5 as unknown as string })).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
    );
  });
});

describe('layout', () => {
  const src = fileURLToPath(new URL('../src/', import.meta.url));
  const imports = new Map(
    readdirSync(src)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => [
        f,
        [...readFileSync(`${src}${f}`, 'utf8').matchAll(/from '\.\/([^']+)\.js'/g)].map((m) => `${m[1]}.ts`),
      ]),
  );

  it('layout - no import cycle in src, type-only imports included', () => {
    const cycles: string[] = [];
    const done = new Set<string>();
    const visit = (file: string, path: string[]) => {
      if (path.includes(file)) {
        cycles.push([...path.slice(path.indexOf(file)), file].join(' → '));
        return;
      }
      if (done.has(file)) return;
      for (const next of imports.get(file) ?? []) visit(next, [...path, file]);
      done.add(file);
    };
    for (const file of imports.keys()) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('layout - message-stream and state-view know only the message source, not the client', () => {
    expect(imports.get('message-stream.ts')).not.toContain('client.ts');
    expect(imports.get('state-view.ts')).toEqual(['message-source.ts']);
  });
});
