/**
 * Cluster mode's retention (docs/CLUSTER.md, "Mapping"): the stream keeps one message per
 * id, so its size and a new edge's catch-up follow the live ids, not the history. Its own
 * file: it writes 110 k messages through real edges of a real 3-node cluster.
 */
import type { PublishResult } from '@gossip/client';
import type { Gossipd } from '@gossip/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { bytes, clusterKit } from './cluster-kit.js';

const { natsCluster, clusterName, edge, client, streamState } = clusterKit();

/** How far the test got, and when: said when it fails (a timeout says nothing else). */
let phases: string[] = [];
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.log(phases.join('\n'));
  phases = [];
});

describe('cluster retention', () => {
  it('cluster retention - the stream grows with live ids, not with history: 10 k ids overwritten 10 times weigh as a fresh stream of 10 k', async () => {
    const nats = await natsCluster();
    const overwritten = clusterName();
    const fresh = clusterName();
    phases.push(`grows: nats up at ${Math.round(performance.now())}`);
    const a = await edge(nats, overwritten);
    const f = await edge(nats, fresh);
    phases.push(`grows: edges up at ${Math.round(performance.now())}`);
    const value = bytes('v'.repeat(64));
    const fill = async (d: Gossipd, times: number) => {
      const c = client(d);
      await c.connect();
      for (let t = 0; t < times; t++) {
        for (let i = 0; i < 10_000; i += 2_000) {
          const batch: Promise<PublishResult>[] = [];
          for (let j = i; j < i + 2_000; j++) batch.push(c.publish(`id/${j}`, value));
          await Promise.all(batch);
          phases.push(`fill ${d.port} ${t}/${i} at ${Math.round(performance.now())}`);
        }
      }
      await c.close();
    };
    await Promise.all([fill(a, 10), fill(f, 1)]);
    const big = await streamState(nats, overwritten);
    const small = await streamState(nats, fresh);
    expect(big.messages).toBe(small.messages);
    expect(big.bytes).toBeLessThanOrEqual(2 * small.bytes);
    // a new edge catches up on as many messages either way
    phases.push(`grows: filled at ${Math.round(performance.now())}`);
    const late = await edge(nats, overwritten);
    phases.push(`grows: late at ${Math.round(performance.now())}`);
    const lateFresh = await edge(nats, fresh);
    const caughtUp = (d: Gossipd) => d.logs.find((l) => l.msg.includes('caught up')) as { ids?: number };
    expect(caughtUp(late).ids).toBe(10_000);
    expect(caughtUp(lateFresh).ids).toBe(10_000);
    console.log(
      `cluster: stream after 10 x 10 k writes ${big.messages} messages, ${big.bytes} B; fresh ${small.messages}, ${small.bytes} B`,
    );
  }, 240_000);
});
