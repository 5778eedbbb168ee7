import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectionsAllowed, DESCRIPTOR_RESERVE, descriptorBudget, REFUSING_SLACK } from '../src/descriptors.js';
import { Limiter } from '../src/limiter.js';
import { Outbound } from '../src/outbound.js';
import { InflightBytes, ReadGate } from '../src/read-gate.js';

// The server's small parts, on real sockets over loopback.

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A connected pair: `server` is the accepted side, `client` the connecting one. */
async function pair(): Promise<{ server: Socket; client: Socket }> {
  const listener = createServer();
  servers.push(listener);
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  const [server] = (await once(listener, 'connection')) as [Socket];
  await once(client, 'connect');
  sockets.push(server, client);
  return { server, client };
}

/** Reads from `socket` until `bytes` have arrived; resolves with them. */
function readBytes(socket: Socket, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    const onData = (c: Buffer) => {
      parts.push(c);
      got += c.length;
      if (got >= bytes) {
        socket.off('data', onData);
        resolve(Buffer.concat(parts));
      }
    };
    socket.on('data', onData);
  });
}

describe('outbound', () => {
  it('outbound - frames reach the client whole and in order, past the socket high water', async () => {
    const { server, client } = await pair();
    const out = new Outbound(server, () => undefined);
    const frames = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 * 1024, i));
    for (const f of frames) out.push(f);
    out.pump();
    expect(out.pendingBytes).toBeGreaterThan(0);
    const got = await readBytes(client, 64 * 64 * 1024);
    expect(got.equals(Buffer.concat(frames))).toBe(true);
  });

  it('outbound - discard drops what is queued; what follows goes right behind what the socket took', async () => {
    const { server, client } = await pair();
    client.pause();
    const out = new Outbound(server, () => undefined);
    for (let i = 0; i < 512; i++) out.push(Buffer.alloc(64 * 1024, 1));
    out.pump();
    const taken = server.writableLength;
    expect(out.pendingBytes).toBeGreaterThan(taken);
    out.discard();
    expect(out.pendingBytes).toBe(taken);
    out.end(Buffer.from('END'));
    client.resume();
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    await once(client, 'end');
    const all = Buffer.concat(chunks);
    expect(all.subarray(-3).toString()).toBe('END');
    // Only what the kernel and the socket had taken came before it, not the 32 MiB queued.
    expect(all.length).toBeLessThan(16 * 1024 * 1024);
  });

  it('outbound - whenBelow resolves as the client reads, and at once when the socket closes', async () => {
    const { server, client } = await pair();
    client.pause();
    const out = new Outbound(server, () => undefined);
    for (let i = 0; i < 256; i++) out.push(Buffer.alloc(64 * 1024));
    out.pump();
    let below = false;
    const waited = out.whenBelow(1024 * 1024).then(() => {
      below = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(below).toBe(false);
    client.resume();
    await waited;
    expect(out.pendingBytes).toBeLessThanOrEqual(1024 * 1024);

    const other = await pair();
    other.client.pause();
    const out2 = new Outbound(other.server, () => undefined);
    for (let i = 0; i < 512; i++) out2.push(Buffer.alloc(64 * 1024));
    out2.pump();
    const closed = out2.whenBelow(0);
    other.server.destroy();
    await closed;
  });

  it('outbound - taken counts what the socket took towards the client, whenPumped wakes at the next pump, idle once little waits', async () => {
    const { server, client } = await pair();
    client.pause();
    const out = new Outbound(server, () => undefined);
    expect([out.taken, out.idle]).toEqual([0, true]);
    for (let i = 0; i < 256; i++) out.push(Buffer.alloc(64 * 1024));
    out.pump();
    // The kernel took some; the socket's buffer and the queue hold the rest.
    expect(out.taken).toBe(16 * 1024 * 1024 - out.pendingBytes);
    expect(out.idle).toBe(false);
    // A pump (the tick's flush, a drain) wakes who waits for the socket to take more.
    let pumped = 0;
    void out.whenPumped().then(() => pumped++);
    await Promise.resolve();
    expect(pumped).toBe(0);
    out.pump();
    await Promise.resolve();
    expect(pumped).toBe(1);
    client.resume();
    await readBytes(client, 16 * 1024 * 1024);
    // The socket hears of its last write's completion a turn or so after the client read it.
    for (let k = 0; k < 100 && out.pendingBytes > 0; k++) await new Promise((r) => setImmediate(r));
    expect(out.taken).toBe(16 * 1024 * 1024);
    expect(out.idle).toBe(true);
  });

  it('outbound - nothing pushed after end is sent, and the socket ends after its last write', async () => {
    const { server, client } = await pair();
    const out = new Outbound(server, () => undefined);
    out.push(Buffer.from('a'));
    out.end(Buffer.from('b'));
    out.push(Buffer.from('c'));
    out.pump();
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    await once(client, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('ab');
  });
});

describe('read gate', () => {
  it('read gate - the socket is read again only once every reason is released', async () => {
    const { server } = await pair();
    const gate = new ReadGate(server);
    gate.hold('fetches');
    gate.hold('publishes');
    expect(server.isPaused()).toBe(true);
    gate.release('fetches');
    expect(server.isPaused()).toBe(true);
    gate.release('fetches');
    expect(server.isPaused()).toBe(true);
    gate.release('publishes');
    expect(server.isPaused()).toBe(false);
  });

  it('read gate - close resumes for good', async () => {
    const { server } = await pair();
    const gate = new ReadGate(server);
    gate.hold('inflate');
    gate.close();
    expect(server.isPaused()).toBe(false);
    gate.hold('fetches');
    expect(server.isPaused()).toBe(false);
  });

  it('inflight bytes - past the cap the socket is not read until half of it is done', async () => {
    const { server } = await pair();
    const gate = new ReadGate(server);
    const inflight = new InflightBytes(gate, 'publishes', 1000);
    inflight.add(600);
    expect(server.isPaused()).toBe(false);
    inflight.add(600);
    expect(server.isPaused()).toBe(true);
    inflight.done(600);
    expect(server.isPaused()).toBe(true);
    inflight.done(100);
    expect(server.isPaused()).toBe(false);
    expect(inflight.bytes).toBe(500);
  });
});

describe('limiter', () => {
  it('limiter - runs at most its capacity at once, the others in the order they came, failures included', async () => {
    const limiter = new Limiter(1);
    const order: string[] = [];
    let running = 0;
    let most = 0;
    const task = (name: string, fail = false) =>
      limiter.run(async () => {
        running++;
        most = Math.max(most, running);
        order.push(name);
        await new Promise((r) => setImmediate(r));
        running--;
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([task('a'), task('b', true), task('c')]);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(most).toBe(1);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});

describe('descriptors', () => {
  it('descriptors - the budget is read from /proc on Linux', () => {
    const budget = descriptorBudget();
    if (process.platform !== 'linux') {
      expect(budget).toBeUndefined();
      return;
    }
    expect(budget?.limit).toBeGreaterThan(0);
    expect(budget?.open).toBeGreaterThan(2);
  });

  it('descriptors - connections get what is left beside the open descriptors and the reserve, at least one', () => {
    expect(connectionsAllowed({ limit: 1024, open: 30 })).toBe(1024 - 30 - DESCRIPTOR_RESERVE - REFUSING_SLACK);
    expect(connectionsAllowed({ limit: 100, open: 30 })).toBe(1);
    expect(connectionsAllowed({ limit: Number.MAX_SAFE_INTEGER, open: 30 })).toBeGreaterThan(1e9);
  });
});
