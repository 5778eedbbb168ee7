// @gossip/store inside your own process, without a server: an append-only log on disk
// that keeps the newest message of every id (newest ts wins), survives a restart, and
// replays what changed since a ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { now } from '@gossip/protocol';
import { Store } from '@gossip/store';

const dir = await mkdtemp(join(tmpdir(), 'gossip-example-'));
try {
  let store = await Store.open({ dir, fsync: 'always' });
  const ts = now();
  console.log('append v1:', (await store.append('config/db', ts, Buffer.from('v1'))).status);
  console.log('append v2:', (await store.append('config/db', ts + 1n, Buffer.from('v2'))).status);
  console.log('append older:', (await store.append('config/db', ts - 1n, Buffer.from('v0'))).status);
  await store.close();

  store = await Store.open({ dir });
  const m = await store.get('config/db');
  console.log(`after reopen: config/db = ${Buffer.from(m.data).toString()}`);
  for await (const r of store.replay(ts))
    console.log(`replayed since ${ts}: ${r.id} = ${Buffer.from(r.data).toString()}`);
  await store.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
