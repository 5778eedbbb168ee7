// Does nats-server's compare-and-set (Nats-Expected-Last-Subject-Sequence) hold when two
// writers race on the same subjects? Two nats.js connections run a compare-and-set loop
// per publish (read the last message on a conflict; stale if its ts is as new) over 50
// ids, 20 rounds, all at once, into a stream keeping one message per subject; then counts
// the ids whose last message is not the newest ts written. Twice: with the header alone,
// and with a message id `<expected>@<id>` on each publish as gossipd's edges send it (a
// duplicate answer is a failed compare-and-set). docs/CLUSTER.md quotes it.
// Run after `pnpm build`: node bench/nats-cas-race.mjs [replicas, default 3]
import { NatsCluster } from '@gossip/testing';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

const replicas = Number(process.argv[2] ?? 3);
const nats = await NatsCluster.start({ size: 3 });
try {
  const ncs = await Promise.all([0, 1].map(() => connect({ servers: nats.urls })));
  const jsm = await jetstreamManager(ncs[0]);
  for (const withId of [false, true]) {
    await jsm.streams.add({ name: 'RACE', subjects: ['race.>'], num_replicas: replicas, max_msgs_per_subject: 1 });
    const newest = new Map();
    const write = async (nc, id, ts) => {
      const js = jetstream(nc);
      const m = await jetstreamManager(nc);
      let expected = 0;
      for (;;) {
        try {
          const msgID = withId ? `${expected}@${id}` : undefined;
          const ack = await js.publish(`race.${id}`, Buffer.from(String(ts)), {
            expect: { lastSubjectSequence: expected },
            msgID,
          });
          if (!ack.duplicate) return;
          throw Object.assign(new Error('duplicate'), { code: 10071 });
        } catch (e) {
          if (e.code !== 10071) throw e;
          const last = await m.streams.getMessage('RACE', { last_by_subj: `race.${id}` });
          if (last && Number(Buffer.from(last.data).toString()) >= ts) return;
          expected = last?.seq ?? 0;
        }
      }
    };
    const work = [];
    for (let round = 0; round < 20; round++)
      for (let id = 0; id < 50; id++)
        for (const nc of ncs) {
          const ts = 1000 + Math.floor(Math.random() * 1e6);
          if (ts > (newest.get(id) ?? 0)) newest.set(id, ts);
          work.push(write(nc, id, ts));
        }
    await Promise.all(work);
    let older = 0;
    for (let id = 0; id < 50; id++) {
      const last = await jsm.streams.getMessage('RACE', { last_by_subj: `race.${id}` });
      if (Number(Buffer.from(last.data).toString()) !== newest.get(id)) older++;
    }
    console.log(
      `R${replicas}, ${withId ? 'with' : 'without'} message ids: ${older} of 50 ids end on an older ts than the newest written`,
    );
    await jsm.streams.delete('RACE');
  }
  await Promise.all(ncs.map((nc) => nc.close()));
} finally {
  await nats.close();
}
