import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import {
  type Frame,
  FrameDecoder,
  FrameEncoder,
  type HelloFrame,
  MessageFlags,
  MIN_TS,
  ResyncReason,
} from '@gossip/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sub, subHelp } from '../src/commands/sub.js';
import { EXIT, type Io, UsageError } from '../src/common.js';

// `gossip sub` against a scripted server: what it asks for and what it prints.

interface Conn {
  socket: Socket;
  hello: HelloFrame;
  frames: Frame[];
  enc: FrameEncoder;
}

/** A server that speaks just enough: `answer` decides what each hello gets. */
async function scripted(answer: (c: Conn) => void, options: { prefixes?: boolean } = {}) {
  const conns: Conn[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    let conn: Conn | undefined;
    const frames: Frame[] = [];
    const dec = new FrameDecoder((f) => {
      frames.push(f);
      if (conn) return;
      conn = { socket, hello: f as HelloFrame, frames, enc: new FrameEncoder() };
      conns.push(conn);
      conn.enc.welcome({
        epoch: 'ab'.repeat(16),
        newestTs: MIN_TS,
        horizon: null,
        maxIdBytes: 256,
        maxDataBytes: 1024,
        maxFrameBytes: 64 * 1024,
        pingIntervalMs: 0,
        ...(options.prefixes === false ? {} : { maxPrefixes: 64, maxPrefixBytes: 256 }),
      });
      answer(conn);
      socket.write(conn.enc.take());
    });
    socket.on('data', (d: Buffer) => dec.push(d));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return { conns, server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

function io(): Io & { stdout: string; stderr: string } {
  const out = {
    stdout: '',
    stderr: '',
    out: (t: string | Uint8Array) => {
      out.stdout += typeof t === 'string' ? t : Buffer.from(t).toString('latin1');
    },
    err: (t: string) => {
      out.stderr += t;
    },
    stdin: async () => Buffer.alloc(0),
    tty: false,
    env: {},
  };
  return out;
}

/** Runs `gossip sub args` until `until` holds for what it printed, then interrupts it. */
async function run(args: string[], address: string, until: (o: { stdout: string; stderr: string }) => boolean) {
  const o = io();
  const ac = new AbortController();
  let finished = false;
  const code = sub([...args, '--address', address], o, ac.signal).finally(() => {
    finished = true;
  });
  await vi.waitFor(() => expect(finished || until(o)).toBe(true), { timeout: 5000 });
  ac.abort();
  return { code: await code, stdout: o.stdout, stderr: o.stderr };
}

describe('cli sub', () => {
  it('cli sub - with prefixes the hello names them, each from --since, and each line is <time> <id> <value>', async () => {
    const { conns, address } = await scripted((c) => {
      for (const { prefix } of c.hello.prefixes ?? []) c.enc.prefixDone(prefix, 0, MIN_TS, false);
      c.enc
        .message(MessageFlags.Replayed, 'flags/a', 5n, Buffer.from('on'))
        .message(0, 'presence/b', 6n, Buffer.alloc(0))
        .message(MessageFlags.Transient, 'flags/c', 7n, Buffer.from('t'));
    });
    const r = await run(['flags/', 'presence/'], address, (o) => o.stdout.split('\n').length > 3);
    expect(r.code).toBe(EXIT.ok);
    expect(conns[0]?.hello.prefixes).toEqual([
      { prefix: 'flags/', since: MIN_TS },
      { prefix: 'presence/', since: MIN_TS },
    ]);
    expect(conns[0]?.hello.since).toBeNull();
    expect(r.stdout).toBe(
      '1970-01-01T00:00:00.000000005Z flags/a "on"\n1970-01-01T00:00:00.000000006Z presence/b (deleted)\n1970-01-01T00:00:00.000000007Z flags/c "t" (transient)\n',
    );
  });

  it('cli sub - --since now --json with a prefix: live only, JSON lines with the time', async () => {
    const { conns, address } = await scripted((c) => {
      c.enc.prefixDone('flags/', 0, MIN_TS, false).message(0, 'flags/a', 5n, Buffer.from('on'));
    });
    const r = await run(['flags/', '--since', 'now', '--json'], address, (o) => o.stdout.includes('\n'));
    expect(conns[0]?.hello.prefixes).toEqual([{ prefix: 'flags/', since: null }]);
    expect(JSON.parse(r.stdout)).toEqual({
      id: 'flags/a',
      ts: '5',
      time: '1970-01-01T00:00:00.000000005Z',
      value: 'on',
      deleted: false,
      transient: false,
      replayed: false,
    });
  });

  it('cli sub - without a prefix it asks for every id, as before', async () => {
    const { conns, address } = await scripted((c) => {
      c.enc.replayDone(0, MIN_TS, false).message(0, 'any/id', 5n, Buffer.from('v'));
    });
    const r = await run([], address, (o) => o.stdout.includes('\n'));
    expect(r.stdout).toBe('1970-01-01T00:00:00.000000005Z any/id "v"\n');
    expect(conns[0]?.hello.prefixes).toBeUndefined();
    expect(conns[0]?.hello.since).toBe(MIN_TS);
  });

  it('cli sub - a resync of one prefix names it on stderr; the full snapshot a first --since all asks for does not', async () => {
    for (const [reason, stderr] of [
      [ResyncReason.Epoch, 'resync (epoch) of "flags/": a snapshot of it follows\n'],
      [ResyncReason.Full, ''],
    ] as const) {
      const { address } = await scripted((c) => {
        c.enc
          .prefixResync('flags/', reason, null)
          .message(MessageFlags.Replayed, 'flags/a', 5n, Buffer.from('on'))
          .prefixDone('flags/', 1, 5n, true);
      });
      const r = await run(['flags/'], address, (o) => o.stdout.includes('\n'));
      expect(r.stderr).toBe(stderr);
      expect(r.stdout).toBe('1970-01-01T00:00:00.000000005Z flags/a "on"\n');
    }
  });

  it('cli sub - an address that dies is left for the next, each failed attempt a "reconnecting" line, not an error', async () => {
    const second = await scripted(() => undefined);
    const first = await scripted((c) => {
      // the first server dies after its welcome: its port refuses from then on
      setTimeout(() => {
        first.server.close();
        c.socket.destroy();
      }, 20);
    });
    const r = await run([], `${first.address},${second.address}`, () => second.conns.length > 0);
    expect(r.code).toBe(EXIT.ok);
    expect(r.stderr).toMatch(/^disconnected: GOSSIP_ERR_CONNECTION_CLOSED: .*; reconnecting$/m);
    expect(r.stderr).toMatch(/^reconnecting: GOSSIP_ERR_IO: .*ECONNREFUSED/m);
    expect(r.stderr).not.toMatch(/^gossip: /m);
  });

  it('cli sub - a server without prefix subscriptions fails with GOSSIP_ERR_PREFIXES_UNSUPPORTED, exit 1', async () => {
    const { address } = await scripted((c) => void c.enc.replayDone(0, MIN_TS, false), { prefixes: false });
    const o = io();
    // main() prints what sub() throws and exits 1 for a GossipError that is not a usage error.
    await expect(sub(['flags/', '--address', address], o, new AbortController().signal)).rejects.toMatchObject({
      code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED',
    });
    expect(o.stdout).toBe('');
  });

  it('cli sub - a prefix named twice is a usage error; --help shows prefixes', async () => {
    await expect(sub(['a/', 'a/'], io(), new AbortController().signal)).rejects.toThrow(UsageError);
    const o = io();
    expect(await sub(['--help'], o, new AbortController().signal)).toBe(EXIT.ok);
    expect(o.stdout).toBe(subHelp);
    expect(subHelp).toContain('Usage: gossip sub [prefix...]');
  });
});
