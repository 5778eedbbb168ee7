/**
 * Cluster mode end to end (docs/CLUSTER.md): real nats-server processes in a 3-node
 * JetStream cluster on loopback, real gossipd edges over it, and @gossip/client, with a
 * client-side oracle of every acked write.
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GossipClient, GossipState, type PublishResult } from '@gossip/client';
import { GOSSIPD, type Gossipd } from '@gossip/testing';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser } from '@nats-io/nkeys';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { FanoutBatcher } from '../../../apps/gossipd/src/cluster/fanout.js';
import { loadPosition } from '../../../apps/gossipd/src/cluster/position.js';
import { encodeRecord } from '../../../apps/gossipd/src/cluster/record.js';
import { subjects } from '../../../apps/gossipd/src/cluster/subjects.js';
import { bytes, clusterKit, eventually, metric, text } from './cluster-kit.js';

const { h, natsCluster, clusterName, readyz, edge, twoEdges, client, streamState, natsProxy } = clusterKit();

describe('cluster', () => {
  it('cluster - edges share one log: one epoch, writes and emits reach every edge, stale is exact across edges, acks say replicated', async () => {
    const { nats, name, a, b } = await twoEdges();
    const ca = client(a);
    const cb = client(b);
    const onB = new GossipState(cb);
    const epochs: string[] = [];
    ca.on('connect', (i) => epochs.push(i.epoch));
    cb.on('connect', (i) => epochs.push(i.epoch));
    const emitsOnB: string[] = [];
    cb.on('message', (m) => {
      if (m.transient) emitsOnB.push(text(m.value as Uint8Array) as string);
    });
    await ca.connect();
    await cb.connect();
    expect(epochs[0]).toBe(epochs[1]);

    expect(await ca.publish('flag', bytes('one'), { ts: 100n })).toMatchObject({
      status: 'accepted',
      durability: 'replicated',
    });
    expect(await cb.publish('flag', bytes('old'), { ts: 50n })).toMatchObject({ status: 'stale' });
    expect(await cb.publish('flag', bytes('same'), { ts: 100n })).toMatchObject({ status: 'stale' });
    expect(await cb.publish('flag', bytes('two'), { ts: 200n })).toMatchObject({
      status: 'accepted',
      durability: 'replicated',
    });
    expect(await ca.publish('flag', bytes('late'), { ts: 150n })).toMatchObject({ status: 'stale' });
    await ca.emit('presence', bytes('here'), { ts: 300n });
    await eventually('the emit on edge B', () => (emitsOnB.includes('here') ? true : undefined));
    await eventually('edge B view', () => (text(onB.get('flag')) === 'two' ? true : undefined));
    for (const c of [ca, cb]) {
      const [f] = await c.fetch(['flag']);
      expect(f).toMatchObject({ found: true, ts: 200n });
      expect(text(f?.value)).toBe('two');
    }
    // the emit was never stored
    expect((await ca.fetch(['presence']))[0]?.found).toBe(false);
    const state = await streamState(nats, name);
    expect(state.replicas).toBe(3);

    // B's copy follows A's writes through the fan-out alone: no gap asked the stream
    // ("Following the stream"); without the fan-out, B would find them by its stall
    // watch and a consumer, each such time counted
    await Promise.all(Array.from({ length: 500 }, (_, i) => ca.publish(`burst/${i}`, bytes(String(i)))));
    await eventually('the burst on edge B', () => (onB.get('burst/499') !== undefined ? true : undefined));
    for (const d of [a, b]) expect(await metric(d, 'gossip_cluster_fanout_gaps_total')).toBe(0);
  });

  it("cluster - an edge's /metrics serves the cluster families docs/CLUSTER.md lists, beside docs/OPERATIONS.md's", async () => {
    const nats = await natsCluster();
    const name = clusterName();
    const a = await edge(nats, name);
    const w = client(a);
    await w.connect();
    for (let i = 0; i < 5; i++) await w.publish(`m/${i}`, bytes('v'));
    const { text: metrics } = await a.admin('/metrics');
    const served = new Map(
      [...metrics.matchAll(/^# TYPE (gossip_[a-z_]+) (\w+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
    );
    const listed = (file: string, from: string, to?: string) => {
      const doc = readFileSync(new URL(`../../../docs/${file}`, import.meta.url), 'utf8');
      const start = doc.indexOf(from);
      const section = doc.slice(start, to === undefined ? undefined : doc.indexOf(to, start));
      return [...section.matchAll(/^ *\| `(gossip_[a-z_]+)` \| (\w+) \|/gm)].map((m) => [
        m[1] as string,
        m[2] as string,
      ]);
    };
    // the section runs to the end of the file
    const cluster = listed('CLUSTER.md', '## Operations');
    expect(cluster.length).toBe(9);
    expect(Object.fromEntries(served)).toEqual(
      Object.fromEntries([...listed('OPERATIONS.md', '## Metrics', '## Durability'), ...cluster]),
    );
    const value = (family: string) => Number(new RegExp(`^${family} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(value('gossip_cluster_connected')).toBe(1);
    expect(value('gossip_cluster_ready')).toBe(1);
    // the epoch record, then the five publishes
    expect(value('gossip_cluster_applied_sequence')).toBeGreaterThanOrEqual(6);
    expect(value('gossip_cluster_publishes_in_flight')).toBe(0);
  });

  it('cluster - edges prove themselves to NATS servers that ask (user and password, over TLS); one without credentials waits, logging why', async () => {
    const fixture = (f: string) => fileURLToPath(new URL(`../fixtures/${f}`, import.meta.url));
    // TEST-ONLY self-signed certificate for 127.0.0.1 (security.test.ts): it is its own CA
    const cert = fixture('tls-cert.pem');
    const nats = await natsCluster([
      '--user',
      'edge',
      '--pass',
      'secret',
      '--tls',
      '--tlscert',
      cert,
      '--tlskey',
      fixture('tls-key.pem'),
    ]);
    const name = clusterName();
    // an edge without credentials: no copy yet, so it waits for the cluster before it listens
    const waiting = spawn(
      process.execPath,
      [GOSSIPD, '--port', '0', '--admin-port', 'off', '--data-dir', await h.tmp(), '--log-format', 'json'].concat([
        '--cluster',
        nats.urls.join(','),
        '--cluster-name',
        name,
        '--cluster-tls-ca',
        cert,
      ]),
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const lines: string[] = [];
    createInterface({ input: waiting.stdout }).on('line', (l) => lines.push(l));
    try {
      await eventually('the edge without credentials says why it waits', () =>
        lines.some((l) => l.includes('cannot reach the cluster') && /authorization/i.test(l)) ? true : undefined,
      );
    } finally {
      waiting.kill('SIGKILL');
    }

    const a = await edge(nats, name, {
      args: ['--cluster-user', 'edge', '--cluster-tls-ca', cert],
      env: { GOSSIP_CLUSTER_PASSWORD: 'secret' },
    });
    const w = client(a);
    await w.connect();
    const r = await w.publish('k', bytes('v'));
    expect(r).toMatchObject({ status: 'accepted', durability: 'replicated' });
  });

  it('cluster - edges prove themselves with a NATS credentials file (operator mode, JWTs) or an nkey seed file', async () => {
    const dir = await h.tmp();
    // operator mode: an operator signs the accounts, an account signs the edge's user; the
    // servers know the accounts from a memory resolver
    const operator = createOperator();
    const system = createAccount();
    const account = createAccount();
    const user = createUser();
    const unlimited = {
      conn: -1,
      leaf: -1,
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
    };
    const jetStreamOn = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
    const operatorConf = join(dir, 'operator.conf');
    await writeFile(
      operatorConf,
      [
        `operator: ${await encodeOperator('O', operator, { system_account: system.getPublicKey() })}`,
        `system_account: ${system.getPublicKey()}`,
        'resolver: MEMORY',
        'resolver_preload: {',
        `  ${system.getPublicKey()}: ${await encodeAccount('SYS', system, { limits: unlimited }, { signer: operator })}`,
        `  ${account.getPublicKey()}: ${await encodeAccount('A', account, { limits: { ...unlimited, ...jetStreamOn } }, { signer: operator })}`,
        '}',
      ].join('\n'),
    );
    const creds = join(dir, 'edge.creds');
    await writeFile(creds, fmtCreds(await encodeUser('edge', user, account), user));
    const jwtNats = await natsCluster(['--config', operatorConf]);
    await expect(connect({ servers: jwtNats.urls, reconnect: false })).rejects.toThrow(/authorization/i);
    const name = clusterName();
    const a = await edge(jwtNats, name, { args: ['--cluster-creds', creds] });
    const b = await edge(jwtNats, name, { env: { GOSSIP_CLUSTER_CREDS: creds } });
    const w = client(a);
    await w.connect();
    expect(await w.publish('k', bytes('jwt'))).toMatchObject({ status: 'accepted', durability: 'replicated' });
    const r = client(b);
    await r.connect();
    await eventually('k on the second edge', async () => {
      const [got] = await r.fetch(['k']);
      return text(got?.value) === 'jwt' ? true : undefined;
    });

    // a user JWT that expires, its file replaced only afterwards (written aside, renamed
    // over it): the servers close the edge's connection, turn it away while the file holds
    // the expired JWT, and take it again once the file holds a new one, with no restart
    const shortLived = createUser();
    const rotating = join(dir, 'rotating.creds');
    // long enough for the edge to start and connect first on a slow machine
    const exp = Math.floor(Date.now() / 1000) + 8;
    await writeFile(rotating, fmtCreds(await encodeUser('edge', shortLived, account, {}, { exp }), shortLived));
    const e = await edge(jwtNats, name, { args: ['--cluster-creds', rotating] });
    await eventually('the edge turned away once its JWT expired', async () =>
      (await readyz(e)).status === 503 ? true : undefined,
    );
    const renewed = createUser();
    await writeFile(`${rotating}.new`, fmtCreds(await encodeUser('edge', renewed, account), renewed));
    await rename(`${rotating}.new`, rotating);
    await eventually('the edge back with the new JWT', async () =>
      (await readyz(e)).status === 200 ? true : undefined,
    );
    const y = client(e);
    await y.connect();
    expect(await y.publish('k', bytes('renewed'))).toMatchObject({ status: 'accepted', durability: 'replicated' });
    expect(e.alive).toBe(true);

    // servers that list their users by nkey
    const nkeyUser = createUser();
    const nkeyConf = join(dir, 'nkey.conf');
    await writeFile(nkeyConf, `authorization { users: [ { nkey: ${nkeyUser.getPublicKey()} } ] }\n`);
    const seed = join(dir, 'edge.nk');
    await writeFile(seed, `${new TextDecoder().decode(nkeyUser.getSeed())}\n`);
    const nkeyNats = await natsCluster(['--config', nkeyConf]);
    const c = await edge(nkeyNats, clusterName(), { args: ['--cluster-nkey', seed] });
    const x = client(c);
    await x.connect();
    expect(await x.publish('k', bytes('nkey'))).toMatchObject({ status: 'accepted', durability: 'replicated' });
    // the same servers turn away a client that proves nothing
    await expect(connect({ servers: nkeyNats.urls, reconnect: false })).rejects.toThrow(/authorization/i);
  });

  it('cluster - subscriptions by prefix work on every edge', async () => {
    const { a, b } = await twoEdges();
    const sub = h.keep(new GossipClient({ address: `127.0.0.1:${b.port}`, prefixes: ['cfg/'], since: 'all' }));
    const seen: string[] = [];
    sub.on('message', (m) => seen.push(m.id));
    const pub = client(a);
    await pub.connect();
    await pub.publish('cfg/x', bytes('1'));
    await sub.connect();
    await pub.publish('other/y', bytes('2'));
    await pub.publish('cfg/z', bytes('3'));
    await eventually('cfg/z on edge B', () => (seen.includes('cfg/z') ? true : undefined));
    // a write applied on edge B while the subscriber's replay ran may come twice (duplicates near the boundary are allowed)
    expect([...new Set(seen)]).toEqual(['cfg/x', 'cfg/z']);
  });

  // docs/CLUSTER.md, "Racing writes": without the message id on each compare-and-set,
  // nats-server 2.9.10 at 3 replicas lets racing writes through and this fails.
  it('cluster - two edges racing on the same ids converge with every client to the newest ts per id', async () => {
    const { a, b } = await twoEdges();
    const ca = client(a);
    const cb = client(b);
    const views = [new GossipState(ca), new GossipState(cb)];
    // every value each edge's client received, live or in replay
    const received: { id: string; ts: bigint }[] = [];
    for (const c of [ca, cb]) c.on('message', (m) => void received.push({ id: m.id, ts: m.ts }));
    await Promise.all([ca.connect(), cb.connect()]);
    const ids = Array.from({ length: 50 }, (_, i) => `race/${i}`);
    // Both edges take every id at the same time, with ts drawn so that either may win.
    const results: { id: string; ts: bigint; r: PublishResult }[] = [];
    const newest = new Map<string, bigint>();
    // GOSSIP_RACE_ROUNDS=80 races harder (8,000 publishes at once, past the follower's batch)
    const rounds = Number(process.env.GOSSIP_RACE_ROUNDS ?? 20);
    const work: Promise<void>[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const id of ids) {
        for (const c of [ca, cb]) {
          const ts = BigInt(1_000 + Math.floor(Math.random() * 1_000_000));
          if (ts > (newest.get(id) ?? 0n)) newest.set(id, ts);
          work.push(c.publish(id, bytes(`${ts}`), { ts }).then((r) => void results.push({ id, ts, r })));
        }
      }
    }
    await Promise.all(work);
    // The newest ts of each id was accepted; each stale ack had an equal or newer ts accepted for its id.
    const accepted = new Map<string, bigint[]>();
    for (const { id, ts, r } of results) {
      if (r.status === 'accepted') accepted.set(id, [...(accepted.get(id) ?? []), ts]);
    }
    for (const id of ids) {
      const max = newest.get(id) as bigint;
      expect(accepted.get(id)).toContain(max);
    }
    for (const { id, ts, r } of results) {
      if (r.status === 'stale') expect((accepted.get(id) ?? []).some((t) => t >= ts)).toBe(true);
    }
    for (const [v, view] of views.entries()) {
      await eventually('a view to converge', () =>
        ids.every((id) => view.entry(id)?.ts === newest.get(id)) ? true : undefined,
      ).catch(async (e) => {
        const bad = ids.filter((id) => view.entry(id)?.ts !== newest.get(id));
        const fa = await ca.fetch(bad);
        const fb = await cb.fetch(bad);
        for (const [i, id] of bad.slice(0, 5).entries())
          console.log(
            `view ${v} ${id}: view ${view.entry(id)?.ts} newest ${newest.get(id)} A ${fa[i]?.ts} B ${fb[i]?.ts} results ${results
              .filter((r) => r.id === id && r.ts >= (view.entry(id)?.ts ?? 0n))
              .map((r) => `${r.ts}:${r.r.status}`)
              .join(',')}`,
          );
        throw e;
      });
    }
    for (const c of [ca, cb]) {
      for (const f of await c.fetch(ids)) expect(f.ts).toBe(newest.get(f.id));
    }
    // the races were seen as such
    const conflicts = await Promise.all([a, b].map((e) => metric(e, 'gossip_cluster_conflicts_total')));
    expect((conflicts[0] as number) + (conflicts[1] as number)).toBeGreaterThan(0);
    // No client was given a value whose publish was acked stale: the edges agree on the winners.
    for (const { id, ts } of received) expect(accepted.get(id) ?? []).toContain(ts);
  });

  it('cluster - killing an edge moves its clients to another with no snapshot and nothing missed, also after both edges compacted', async () => {
    // tombstones older than 1 s leave the stream; compaction runs whenever asked (POST /compact)
    const { nats, name, a, b } = await twoEdges(['--tombstone-retention', '1s', '--compact-threshold', '0']);
    const writer = client(b);
    await writer.connect();
    const oracle = new Map<string, string | undefined>();
    const put = async (id: string, v: string | undefined, ts?: bigint) => {
      const options = ts === undefined ? {} : { ts };
      const r = await (v === undefined ? writer.delete(id, options) : writer.publish(id, bytes(v), options));
      expect(r.status).toBe('accepted');
      oracle.set(id, v);
    };
    // deletes with old ts: past the retention at once
    for (let i = 0; i < 20; i++) await put(`gone/${i}`, 'x', BigInt(1_000 + i));
    for (let i = 0; i < 20; i++) await put(`gone/${i}`, undefined, BigInt(2_000 + i));
    for (let i = 0; i < 20; i++) await put(`kept/${i}`, `v${i}`);

    // a new edge, started before the stream removes the tombstones: it never held their
    // ids' older values, so the removal is no gap for it (it must not stop)
    const fresh = await edge(nats, name, { args: ['--tombstone-retention', '1s'] });

    const reader = client(a, b);
    const view = new GossipState(reader);
    const addresses: string[] = [];
    reader.on('connect', (i) => addresses.push(i.address));
    await reader.connect();
    await eventually('the reader caught up', () => (view.size === 20 ? true : undefined));
    // its first replay (since 'all', no epoch yet) was a snapshot; none after
    const resyncs: unknown[] = [];
    reader.on('resync', (r) => resyncs.push(r));

    // The cluster removes the tombstones and raises its horizon; both edges take it and compact.
    // (no sooner than 20 s after the stream took them, whatever the retention)
    await eventually(
      'the cluster horizon',
      async () => ((await streamState(nats, name)).messages <= 20 + 2 ? true : undefined),
      90_000,
    );
    for (const e of [a, b]) {
      await eventually('the edge took the horizon', () =>
        e.logs.some((l) => l.msg.includes('raised its horizon')) ? true : undefined,
      );
      expect((await e.admin('/compact', 'POST')).status).toBe(200);
    }

    // the new edge took the horizon and went on checking it (every second here): still up
    await eventually('the new edge took the horizon', () =>
      fresh.logs.some((l) => l.msg.includes('raised its horizon')) ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 2_500));
    expect(fresh.alive).toBe(true);
    expect((await readyz(fresh)).status).toBe(200);

    await a.kill();
    await put('kept/0', 'after');
    await put('new/1', 'n');
    // an id whose tombstone left the stream, written again: a compare-and-set on an empty
    // subject, as at its first publish, whose message id the stream has forgotten
    await put('gone/0', 'back');
    await eventually('the reader on edge B with the writes made since', () =>
      text(view.get('kept/0')) === 'after' && view.has('new/1') && view.has('gone/0') ? true : undefined,
    );
    expect(addresses.at(-1)).toBe(`127.0.0.1:${b.port}`);
    expect(resyncs).toEqual([]);
    for (const [id, v] of oracle) expect(text(view.get(id))).toBe(v === undefined ? undefined : v);

    // a new client of edge B from `since`: its view, and the resyncs it was sent
    const fromSince = async (since: bigint) => {
      const c = h.keep(new GossipClient({ address: `127.0.0.1:${b.port}`, since }));
      const resyncs: unknown[] = [];
      c.on('resync', (r) => resyncs.push(r));
      const view = new GossipState(c);
      await c.connect();
      await eventually(`the client from ${since} has the writes`, () => (view.has('new/1') ? true : undefined));
      return { view, resyncs };
    };
    // a since older than the cluster's horizon (the deletes' ts, 2,000 to 2,019): the resync, as on one node
    const late = await fromSince(1_500n);
    await eventually('the late client resynced', () => (late.resyncs.length > 0 ? true : undefined));
    for (const [id, v] of oracle) expect(text(late.view.get(id))).toBe(v === undefined ? undefined : v);
    // one newer than the horizon: no resync, a replay from there
    const recent = await fromSince(2_500n);
    expect(recent.resyncs).toEqual([]);
  });

  it('cluster - an edge restarted catches up from its last position, not from zero', async () => {
    const { nats, name, a, b } = await twoEdges();
    const w = client(a);
    await w.connect();
    for (let i = 0; i < 100; i++) await w.publish(`k${i}`, bytes('1'));
    await eventually('edge B has them', async () => {
      const c = client(b);
      await c.connect();
      const f = await c.fetch(['k99']);
      await c.close();
      return f[0]?.found ? true : undefined;
    });
    // once it has written a position (every 200 ms), a crash: the position may lag what
    // the copy holds, never run ahead
    const saved = async () => (await loadPosition(b.dataDir))?.applied ?? 0;
    await eventually('edge B saved a position', async () => ((await saved()) > 0 ? true : undefined));
    await b.kill();
    for (let i = 0; i < 100; i++) await w.publish(`k${i}`, bytes('2'));
    await w.publish('while-down', bytes('x'));
    const again = await edge(nats, name, { dataDir: b.dataDir });
    const listening = again.logs.find((l) => l.msg.startsWith('gossipd') && l.msg.includes('listening on')) as {
      applied?: number;
    };
    expect(listening.applied).toBeGreaterThan(0);
    const r = client(again);
    await r.connect();
    const got = await r.fetch(['k0', 'k99', 'while-down']);
    expect(got.map((f) => text(f.value))).toEqual(['2', '2', 'x']);
  });

  it('cluster - an edge cut off while a tombstone it never took leaves the stream stops (exit 1), and its next start rebuilds its copy', async () => {
    const nats = await natsCluster();
    const name = clusterName();
    const retention = ['--tombstone-retention', '1s'];
    const a = await edge(nats, name, { args: retention });
    const proxy = await natsProxy(nats.urls[0] as string);
    const b = await edge(nats, name, { args: retention, servers: [proxy.url] });
    const w = client(a);
    await w.connect();
    expect((await w.publish('doomed', bytes('x'), { ts: 1_000n })).status).toBe('accepted');
    const fetchB = async (d: typeof b) => {
      const c = client(d);
      await c.connect();
      const [f] = await c.fetch(['doomed']);
      await c.close();
      return f;
    };
    await eventually('edge B has the value', async () => ((await fetchB(b))?.found ? true : undefined));

    proxy.cut();
    await eventually('edge B lost the cluster', async () => ((await readyz(b)).status === 503 ? true : undefined));
    // deleted with an old ts: past the retention at once; the stream drops it some seconds later
    expect((await w.delete('doomed', { ts: 2_000n })).status).toBe('accepted');
    await eventually(
      'the stream removed the tombstone',
      () => (a.logs.some((l) => l.msg.includes('removed tombstones from the stream')) ? true : undefined),
      90_000,
    );
    proxy.restore();
    const exit = await b.exited;
    expect(exit.code).toBe(1);
    expect(
      b.logs.some((l) => String((l as { err?: { message?: string } }).err?.message).includes('had not taken')),
    ).toBe(true);

    // its next start rebuilds the copy from the stream: the id is gone there too
    const again = await edge(nats, name, { dataDir: b.dataDir, args: retention });
    expect((await fetchB(again))?.found).toBe(false);
    expect(again.logs.some((l) => l.msg.includes('out of date beyond the stream'))).toBe(true);
  });

  it('cluster - killing one NATS server under publish load loses no acked write, and publishing resumes', async () => {
    const { nats, name, a, b } = await twoEdges();
    const w = client(a, b);
    await w.connect();
    const acked = new Map<string, bigint>();
    let failed = 0;
    let ackCount = 0;
    let stop = false;
    let n = 0;
    const load = (async () => {
      while (!stop) {
        const batch: Promise<void>[] = [];
        for (let i = 0; i < 50; i++) {
          const id = `load/${n++ % 500}`;
          batch.push(
            w.publish(id, bytes(`${n}`)).then(
              (r) => {
                if (r.status === 'accepted') ackCount++;
                if (r.status === 'accepted' && r.ts > (acked.get(id) ?? 0n)) acked.set(id, r.ts);
              },
              () => {
                failed++;
              },
            ),
          );
        }
        const failedBefore = failed;
        await Promise.all(batch);
        // refused at once while the stream has no leader: no spinning meanwhile
        if (failed > failedBefore) await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await eventually('load running', () => (acked.size >= 500 ? true : undefined));
    const { leader } = await streamState(nats, name);
    const victim = nats.names.indexOf(leader as string);
    await nats.kill(victim >= 0 ? victim : 0);
    const killedAt = performance.now();
    // publishing resumes: writes acked after the kill
    const ackedAtKill = ackCount;
    await eventually(
      'publishes acked after the kill',
      () => (ackCount > ackedAtKill + 1_000 ? true : undefined),
      60_000,
    );
    const resumedMs = performance.now() - killedAt;
    stop = true;
    await load;
    await nats.restart(victim >= 0 ? victim : 0);
    // Every acked write is in the log: read back by a new edge made from the stream alone.
    const fresh = await edge(nats, name);
    const r = client(fresh);
    await r.connect();
    // an older write the restart let in after a newer one is given back by the edges (docs/CLUSTER.md)
    await eventually('every acked write on the new edge', async () =>
      (await r.fetch([...acked.keys()])).every((f) => (f.ts ?? 0n) >= (acked.get(f.id) as bigint)) ? true : undefined,
    );
    console.log(
      `cluster: publishing resumed ${Math.round(resumedMs)} ms after the stream leader was killed; ${failed} publishes refused meanwhile`,
    );
  });

  it('cluster - an edge that cannot reach its cluster stays up, answers 503, refuses publishes with a code and logs its retries until the cluster is back', async () => {
    const nats = await natsCluster();
    const name = clusterName();
    const a = await edge(nats, name);
    const c = client(a);
    await c.connect();
    await c.publish('before', bytes('1'));
    await Promise.all([0, 1, 2].map((i) => nats.kill(i)));
    await eventually('503', async () => ((await readyz(a)).status === 503 ? true : undefined));
    expect((await readyz(a)).text).toMatch(/cluster/);
    const refused = await c.publish('during', bytes('2')).then(
      () => undefined,
      (e: { code?: string }) => e.code,
    );
    expect(refused).toBe('GOSSIP_ERR_CLUSTER_UNAVAILABLE');
    // reads still come from the copy
    expect(text((await c.fetch(['before']))[0]?.value)).toBe('1');
    await eventually('retry lines', () =>
      a.logs.filter((l) => l.msg.includes('reconnecting to the cluster')).length >= 2 ? true : undefined,
    );
    expect(a.alive).toBe(true);
    await Promise.all([0, 1, 2].map((i) => nats.restart(i)));
    await eventually('ready again', async () => ((await readyz(a)).status === 200 ? true : undefined), 60_000);
    const after = await eventually('a publish accepted again', async () => {
      const r = await c
        .publish('after', bytes('3'))
        .catch((e: Error) => void console.log(`cluster: publish after restart: ${e.message}`));
      return r?.status === 'accepted' ? r : undefined;
    });
    expect(after.durability).toBe('replicated');
    // and a stop while the cluster is away again is a clean one (SIGTERM, exit 0)
    await Promise.all([0, 1, 2].map((i) => nats.kill(i)));
    await eventually('503 again', async () => ((await readyz(a)).status === 503 ? true : undefined));
    expect(await a.stop()).toMatchObject({ code: 0 });
  });

  it('cluster - with the quorum lost, an edge still connected refuses publishes with a code once its deadline passes, answers 503 and serves reads, and so does an idle edge, without going back to 200 until the quorum is back; then takes publishes again', async () => {
    const nats = await natsCluster();
    const name = clusterName();
    // connected to the node that stays
    const a = await edge(nats, name, { servers: [nats.urls[0] as string] });
    // an edge that takes no publish: it learns it from the stream itself
    const idle = await edge(nats, name, { servers: [nats.urls[0] as string] });
    const c = client(a);
    await c.connect();
    await c.publish('before', bytes('1'));
    await Promise.all([1, 2].map((i) => nats.kill(i)));
    const idleNotReady = await eventually('503 on the idle edge', async () => {
      const r = await readyz(idle);
      return r.status === 503 ? r : undefined;
    });
    expect(idleNotReady.text).toMatch(/cluster stream unavailable/);
    const refused = await c.publish('during', bytes('2')).then(
      (r) => r.status,
      (e: { code?: string }) => e.code,
    );
    expect(refused).toBe('GOSSIP_ERR_CLUSTER_UNAVAILABLE');
    expect(a.logs.some((l) => l.msg.includes('the stream does not answer'))).toBe(true);
    const notReady = await eventually('503', async () => {
      const r = await readyz(a);
      return r.status === 503 ? r : undefined;
    });
    expect(notReady.text).toMatch(/cluster stream unavailable/);
    expect(text((await c.fetch(['before']))[0]?.value)).toBe('1');
    expect((await c.fetch(['during']))[0]?.found).toBe(false);
    // The remaining server answers for the stream, from its own state, once it stops
    // waiting for the others (a few seconds in): an answer without a leader is not taken
    // for the stream answering. Neither edge says 200 at any time while the quorum is lost.
    const seen = new Set<number>();
    for (let i = 0; i < 16; i++) {
      for (const d of [a, idle]) seen.add((await readyz(d)).status);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect([...seen]).toEqual([503]);
    expect(
      (await c.publish('during', bytes('2')).catch((e: { code?: string }) => e)) as { code?: string },
    ).toMatchObject({
      code: 'GOSSIP_ERR_CLUSTER_UNAVAILABLE',
    });
    await Promise.all([1, 2].map((i) => nats.restart(i)));
    const after = await eventually(
      'a publish accepted again',
      async () => {
        const r = await c.publish('after', bytes('3')).catch(() => undefined);
        return r?.status === 'accepted' ? r : undefined;
      },
      60_000,
    );
    expect(after.durability).toBe('replicated');
    for (const d of [a, idle]) {
      await eventually('ready again', async () => ((await readyz(d)).status === 200 ? true : undefined));
    }
  });

  it('cluster - an edge rebuilds its copy from the stream when its position is torn, and when the stream was made anew (a new epoch)', async () => {
    const nats = await natsCluster();
    const name = clusterName();
    const a = await edge(nats, name);
    const epochOf = async (d: Gossipd) => {
      const c = client(d);
      const info = new Promise<{ epoch: string }>((resolve) => c.once('connect', resolve));
      await c.connect();
      const { epoch } = await info;
      const [f] = await c.fetch(['k']);
      await c.close();
      return { epoch, value: f?.found ? text(f.value) : undefined };
    };
    const w = client(a);
    await w.connect();
    await w.publish('k', bytes('v'));
    await w.close();
    const first = await epochOf(a);
    expect(first.value).toBe('v');

    // a clean stop saves all the copy applied: the stream's last sequence
    expect((await a.stop()).code).toBe(0);
    expect((await loadPosition(a.dataDir))?.applied).toBe((await streamState(nats, name)).last_seq);
    // a torn position: the copy is made again from the stream, from sequence 1
    await writeFile(join(a.dataDir, 'cluster.json'), '{"format":1,"stream":"GOSS');
    const b = await edge(nats, name, { dataDir: a.dataDir });
    const listening = b.logs.find((l) => l.msg.startsWith('gossipd') && l.msg.includes('listening on')) as {
      applied?: number;
    };
    expect(listening.applied).toBe(0);
    expect(await epochOf(b)).toEqual(first);

    // the stream removed and made anew by the edge itself: a new log, with a new epoch
    expect((await b.stop()).code).toBe(0);
    const nc = await connect({ servers: nats.urls });
    await (await jetstreamManager(nc)).streams.delete(`GOSSIP_${name}`);
    await nc.close();
    const c = await edge(nats, name, { dataDir: a.dataDir });
    expect(c.logs.some((l) => l.msg.includes('out of date beyond the stream'))).toBe(true);
    const anew = await epochOf(c);
    expect(anew.epoch).not.toBe(first.epoch);
    expect(anew.value).toBeUndefined();
  });

  it('cluster - hostile input from NATS: an edge skips stream messages and emits no edge wrote, and goes on; a stream whose epoch record is not one stops a new edge', async () => {
    const nats = await natsCluster();
    const name = clusterName();
    const a = await edge(nats, name, { args: ['--max-data', '1KiB'] });
    const sub = client(a);
    const got: string[] = [];
    sub.on('message', (m) => got.push(m.id));
    await sub.connect();
    const nc = await connect({ servers: nats.urls });
    const js = jetstream(nc);
    // the edges' own encoders: what an edge would write, at hostile values (tag 0: no edge's)
    const { idSubject } = subjects(name);
    const record = (ts: bigint, data: Uint8Array) => encodeRecord(ts, 0, 0, data);
    const hostile: [string, Uint8Array][] = [
      [idSubject('short'), Buffer.from([1, 2, 3])],
      [idSubject('format'), Buffer.concat([Buffer.from([99]), Buffer.alloc(20)])],
      [idSubject('reserved-ts'), record(-(2n ** 63n), Buffer.from('v'))],
      [idSubject('x'.repeat(2_000)), record(5n, Buffer.from('v'))],
      [idSubject('big'), record(5n, Buffer.alloc(2_000))],
      [`gossip.${name}.meta.horizon`, Buffer.from('{"horizon":"x"}')],
      [`gossip.${name}.meta.other`, Buffer.from('?')],
    ];
    for (const [subject, body] of hostile) await js.publish(subject, body);
    for (const body of [
      Buffer.from([1]),
      Buffer.alloc(11, 1),
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x61]),
    ])
      nc.publish(`gossip.${name}.emit`, body);
    // fan-out batches no edge wrote: cut short, and one that names a subject outside the log
    const entry = (seq: number, subject: string, body: Uint8Array) => {
      let batch: Uint8Array = new Uint8Array(0);
      const batcher = new FanoutBatcher(
        (b) => {
          batch = b;
        },
        () => 1 << 20,
      );
      batcher.add(seq, subject, body);
      batcher.flush();
      return batch;
    };
    nc.publish(`gossip.${name}.fanout`, Buffer.from([0, 0, 0, 1]));
    nc.publish(`gossip.${name}.fanout`, entry(1_000, `gossip.${name}.meta.other`, Buffer.from('?')));
    await nc.flush();
    // then a write of its own: it comes after all of them, and it is all the subscriber gets
    const w = client(a);
    await w.connect();
    expect(await w.publish('good', bytes('v'))).toMatchObject({ status: 'accepted', durability: 'replicated' });
    await eventually('the write after them', () => (got.includes('good') ? true : undefined));
    expect(got).toEqual(['good']);
    // a write straight into the stream with nothing after it: no edge hands it over, and the
    // copy reads it from the stream all the same ("Following the stream")
    await js.publish(idSubject('foreign'), record(BigInt(Date.now()) * 1_000_000n, Buffer.from('f')));
    await eventually('the foreign write', () => (got.includes('foreign') ? true : undefined));
    const gaps = () => metric(a, 'gossip_cluster_fanout_gaps_total');
    expect(await gaps()).toBeGreaterThanOrEqual(1);
    // an entry far past the stream's end, at an id subject: the edge reads the stream once,
    // drops it, and does not go on reading the stream for a gap that is not one
    const before = await gaps();
    nc.publish(`gossip.${name}.fanout`, entry(1_000_000, idSubject('never'), record(5n, Buffer.from('x'))));
    await nc.flush();
    await eventually('the stream asked for the gap', async () => ((await gaps()) > before ? true : undefined));
    const after = await gaps();
    expect(after).toBe(before + 1);
    // longer than the follower's stall watch (2 s): no read after the one
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await gaps()).toBe(after);
    expect((await w.fetch(['never']))[0]?.found).toBe(false);
    expect(await w.publish('good', bytes('again'))).toMatchObject({ status: 'accepted' });
    // one just past the stream's end: the edge passes none of the real writes that then
    // take those sequences (it asks the stream, which holds nothing there yet)
    const last = (await (await jetstreamManager(nc)).streams.info(`GOSSIP_${name}`)).state.last_seq;
    nc.publish(`gossip.${name}.fanout`, entry(last + 3, idSubject('forged'), record(5n, Buffer.from('x'))));
    await nc.flush();
    await new Promise((r) => setTimeout(r, 300));
    for (const id of ['real1', 'real2', 'real3'])
      expect(await w.publish(id, bytes(id))).toMatchObject({ status: 'accepted', durability: 'replicated' });
    const found = await w.fetch(['real1', 'real2', 'real3', 'forged']);
    expect(found.map((f) => f.found)).toEqual([true, true, true, false]);
    const fetched = await w.fetch(['short', 'format', 'reserved-ts', 'big']);
    expect(fetched.map((f) => f.found)).toEqual([false, false, false, false]);
    expect(a.logs.filter((l) => l.msg.includes('skipped a stream message no edge wrote')).length).toBe(5);
    expect(a.alive).toBe(true);
    expect((await readyz(a)).status).toBe(200);

    // an epoch record that is not one (an edge writes it once): a new edge refuses to start
    await js.publish(`gossip.${name}.meta.epoch`, Buffer.from('not an epoch'));
    await nc.close();
    const run = await h.spawn([
      ...['--port', '0', '--admin-port', 'off', '--data-dir', await h.tmp(), '--log-format', 'json'],
      ...['--cluster', nats.urls.join(','), '--cluster-name', name],
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/is not an epoch/);
  });

  it('cluster - an edge started with its copy while the cluster is away serves it, and a clean stop keeps its position', async () => {
    const nats = await natsCluster();
    const name = clusterName();
    const a = await edge(nats, name);
    const c = client(a);
    await c.connect();
    for (let i = 0; i < 20; i++) await c.publish(`k${i}`, bytes('1'));
    await c.close();
    expect(await a.stop()).toMatchObject({ code: 0 });
    const saved = async () => (await loadPosition(a.dataDir))?.applied;
    const before = await saved();
    expect(before).toBeGreaterThan(20);
    await Promise.all([0, 1, 2].map((i) => nats.kill(i)));
    const b = await h.start({ dataDir: a.dataDir, args: ['--cluster', nats.urls.join(','), '--cluster-name', name] });
    expect((await readyz(b)).status).toBe(503);
    const r = client(b);
    await r.connect();
    expect(text((await r.fetch(['k19']))[0]?.value)).toBe('1');
    await r.close();
    expect(await b.stop()).toMatchObject({ code: 0 });
    expect(await saved()).toBe(before);
  });

  it("cluster - an edge given a stream made without the edges' duplicate window sets it (the racing compare-and-sets need it)", async () => {
    const nats = await natsCluster();
    const name = clusterName();
    const nc = await connect({ servers: nats.urls });
    const jsm = await jetstreamManager(nc);
    const stream = `GOSSIP_${name}`;
    // as an operator might make it: JetStream's default window (2 min)
    await jsm.streams.add({
      name: stream,
      subjects: [`gossip.${name}.id.>`, `gossip.${name}.meta.>`],
      num_replicas: 3,
      max_msgs_per_subject: 1,
    });
    expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(120e9);
    const a = await edge(nats, name);
    expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(2e9);
    expect(a.logs.some((l) => l.msg.includes("set the stream's duplicate window"))).toBe(true);
    await nc.close();
    const w = client(a);
    await w.connect();
    expect(await w.publish('k', bytes('v'))).toMatchObject({ status: 'accepted', durability: 'replicated' });
  });

  it("cluster - a publish past the NATS servers' max_payload is refused as too large at once (the stream is not taken for away), and such an emit reaches its own edge's clients alone", async () => {
    const { a, b } = await twoEdges();
    const pub = client(a);
    const local: string[] = [];
    const remote: string[] = [];
    const onA = client(a);
    const onB = client(b);
    onA.on('message', (m) => m.transient && local.push(m.id));
    onB.on('message', (m) => m.transient && remote.push(m.id));
    await Promise.all([pub.connect(), onA.connect(), onB.connect()]);
    // 2 MiB: under gossipd's --max-data (10 MiB), past nats-server's max_payload (1 MiB)
    const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
    const refused = await pub.publish('big', big).then(
      (r) => r.status,
      (e: { code?: string }) => e.code,
    );
    expect(refused).toBe('GOSSIP_ERR_DATA_TOO_LARGE');
    expect((await readyz(a)).status).toBe(200);
    expect(a.logs.some((l) => l.msg.includes('the stream does not answer'))).toBe(false);
    expect(await pub.publish('small', bytes('x'))).toMatchObject({ status: 'accepted', durability: 'replicated' });
    pub.emit('big-emit', big);
    pub.emit('small-emit', bytes('x'));
    await eventually('the small emit on both edges', () =>
      local.includes('small-emit') && remote.includes('small-emit') ? true : undefined,
    );
    expect(local).toContain('big-emit');
    expect(remote).not.toContain('big-emit');
    expect(a.alive).toBe(true);
  });

  it('cluster - a new edge stopped while it waits for a cluster it cannot reach exits 0, a clean stop', async () => {
    const child = spawn(
      process.execPath,
      [GOSSIPD, '--port', '0', '--admin-port', 'off', '--data-dir', await h.tmp(), '--log-format', 'json'].concat([
        '--cluster',
        'nats://127.0.0.1:1',
      ]),
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    h.keep({ close: async () => void child.kill('SIGKILL') });
    const exited = once(child, 'exit');
    const msgs: string[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) =>
      msgs.push((JSON.parse(l) as { msg: string }).msg),
    );
    await eventually('a retry', () => (msgs.some((m) => m.includes('cannot reach the cluster')) ? true : undefined));
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(msgs).toContain('stopped cleanly');
    expect(msgs.some((m) => m.startsWith('gossipd could not start'))).toBe(false);
  });

  it('cluster - a data folder that holds a single-node log is refused (exit 2), before any NATS server is asked', async () => {
    const single = await h.start();
    await single.stop();
    const run = await h.spawn([
      '--data-dir',
      single.dataDir,
      '--port',
      '0',
      '--admin-port',
      'off',
      '--cluster',
      'nats://127.0.0.1:1',
    ]);
    expect(run.code).toBe(2);
    expect(run.logs.some((l) => /holds a single-node log/.test(l.msg))).toBe(true);
  });
});
