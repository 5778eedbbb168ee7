import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NatsCluster } from '../src/nats-cluster.js';

// A real nats-server cluster (GOSSIP_NATS_SERVER, PATH or /usr/sbin). Losing the meta leader
// costs an election: its followers wait out their timeout (4 to 9 s on 2.9.10) first.

const ELECTION_DEADLINE_MS = 20_000;

let cluster: NatsCluster | undefined;

afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** Whether a process with this id exists (signal 0 only checks). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('nats cluster', () => {
  it('nats cluster - three JetStream nodes survive a killed node, take it back, and close leaves nothing', async () => {
    const c = (cluster = await NatsCluster.start());
    expect(c.urls).toHaveLength(3);
    for (const url of c.urls) expect(url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(new Set(c.urls).size).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(await c.healthz(i)).toMatchObject({ ok: true, status: 200 });
      expect(c.running(i)).toBe(true);
    }
    const pids = [0, 1, 2].map((i) => c.pid(i) as number);
    const url1 = c.url(1);
    expect(await pathExists(join(c.nodeDir(1), 'store', 'jetstream'))).toBe(true);

    await c.kill(1);
    expect(c.running(1)).toBe(false);
    expect(exists(pids[1] as number)).toBe(false);
    // n1 may have been the leader: the two left must elect another, not keep naming it
    const leader = await c.waitReady([0, 2], ELECTION_DEADLINE_MS);
    expect(['n0', 'n2']).toContain(leader);
    expect(await c.metaLeader(0)).toBe(leader);
    expect(await c.metaLeader(2)).toBe(leader);

    await c.restart(1);
    expect(c.running(1)).toBe(true);
    expect(c.url(1)).toBe(url1);
    expect(c.pid(1)).not.toBe(pids[1]);
    pids.push(c.pid(1) as number);
    expect(await c.healthz(1)).toMatchObject({ ok: true, status: 200 });
    expect(c.names).toContain(await c.metaLeader(1));

    await c.stop(2);
    expect(c.running(2)).toBe(false);

    const dir = c.dir;
    await c.close();
    cluster = undefined;
    for (const pid of pids) expect(exists(pid)).toBe(false);
    expect(await pathExists(dir)).toBe(false);
  }, 60_000);

  it('nats cluster - a missing binary fails the start with the option to set', async () => {
    await expect(NatsCluster.start({ binary: '/nonexistent/nats-server' })).rejects.toThrow(/GOSSIP_NATS_SERVER/);
  });
});
