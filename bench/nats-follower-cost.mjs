// Where a cluster edge's publish throughput goes, in nats.js alone (docs/CLUSTER.md and
// bench/RESULTS.md, "Cluster", quote it). Into streams of 3 replicas that keep one
// message per subject, 10,000 subjects, 100 B, 1,000 publishes in flight, rounds of each
// variant in turn in one run:
//   plain     js.publish, as the cluster suite's nats.js row;
//   casbare   compare-and-set on the subject's last sequence alone, nothing following;
//   cas       compare-and-set on the subject's last sequence with the message id an edge
//             sends (`<expected>@<token>`), nothing following the stream;
//   cas+pull  the same, with an ordered pull consumer following the stream (an edge);
//   cas+push  the same, with a push consumer (ack none, flow control) following instead;
//   cas+rp    the same, with the stream republishing each message on core NATS instead;
//   cas+bc    the same, nothing following the stream: the publisher sends what the stream
//             took (subject, sequence, data) to another connection (another edge) over
//             core NATS, in batches, as edges could fan out their own writes.
// Every connection is on one server, which leads every stream. Prints each variant's
// rates and its best beside plain's best.
// Run after `pnpm build`: node bench/nats-follower-cost.mjs [publishes per round, 30000] [rounds, 3]
import { NatsCluster } from '@gossip/testing';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

const TOTAL = Number(process.argv[2] ?? 30_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const WINDOW = 1_000;
const TOKENS = Array.from({ length: 10_000 }, (_, i) => Buffer.from(`id:${i}`).toString('base64url'));
const DATA = Buffer.alloc(100, 0x61);

const nats = await NatsCluster.start({ size: 3 });
// every connection on the first server, which is made to lead every stream: a publisher
// off its stream's leader pays a hop more per publish, and placement is left to chance
const home = nats.url(0);
const nc = await connect({ servers: [home], noAsyncTraces: true });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
/** Each variant's subjects' last sequences, kept across rounds as an edge's copy keeps them. */
const lasts = new Map();

/** While the `broadcast` variant runs: hands each acked publish to the batch sent to the other edges. */
let broadcast;

/** Starts what follows the stream; returns how to stop it. */
async function follow(how, stream, name) {
  if (how === 'pull') {
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.New });
    const messages = await consumer.consume({ max_messages: 4096 });
    const reading = (async () => {
      for await (const m of messages) void m.seq;
    })();
    return async () => {
      messages.stop();
      await reading;
    };
  }
  if (how === 'push') {
    const inbox = `_FOLLOW.${name}.${Date.now()}`;
    const sub = nc.subscribe(inbox, {
      callback: (_e, m) => {
        if (m.headers?.code === 100 && m.reply) m.respond(); // flow control
      },
    });
    const c = await jsm.consumers.add(stream, {
      deliver_subject: inbox,
      ack_policy: 'none',
      deliver_policy: 'new',
      flow_control: true,
      idle_heartbeat: 5e9,
      mem_storage: true,
      num_replicas: 1,
    });
    return async () => {
      sub.unsubscribe();
      await jsm.consumers.delete(stream, c.name);
    };
  }
  if (how === 'broadcast') {
    // another edge, on its own connection, takes the batches
    const peer = await connect({ servers: [home], noAsyncTraces: true });
    let got = 0;
    peer.subscribe(`bc.${name}`, { callback: (_e, m) => void (got += m.data.byteLength) });
    let batch = [];
    let size = 0;
    const send = () => {
      if (batch.length > 0) nc.publish(`bc.${name}`, Buffer.concat(batch, size));
      batch = [];
      size = 0;
    };
    broadcast = (subject, seq, data) => {
      const head = Buffer.allocUnsafe(12 + subject.length);
      head.writeUInt32BE(subject.length, 0);
      head.writeBigUInt64BE(BigInt(seq), 4);
      head.write(subject, 12, 'latin1');
      batch.push(head, data);
      size += head.length + data.length;
      if (batch.length === 2) setImmediate(send);
      else if (size >= 64 * 1024) send();
    };
    return async () => {
      send();
      broadcast = undefined;
      await peer.close();
    };
  }
  if (how === 'republish') {
    const sub = nc.subscribe(`rp${name}.>`, { callback: (_e, m) => void m.headers?.get('Nats-Sequence') });
    return async () => sub.unsubscribe();
  }
  return async () => undefined;
}

async function round(name, cas, how) {
  const stream = name.toUpperCase();
  const config = {
    name: stream,
    subjects: [`${name}.>`],
    num_replicas: 3,
    max_msgs_per_subject: 1,
    duplicate_window: 2e9,
    allow_direct: true,
  };
  if (how === 'republish') config.republish = { src: `${name}.>`, dest: `rp${name}.>` };
  if (!lasts.has(name)) {
    await jsm.streams.add(config);
    await nats.leadStream(nc, stream, 0);
    lasts.set(name, new Map());
  }
  const last = lasts.get(name);
  const stop = await follow(how, stream, name);
  const start = performance.now();
  await new Promise((resolve, reject) => {
    let sent = 0;
    let acked = 0;
    let inFlight = 0;
    const pump = () => {
      while (inFlight < WINDOW && sent < TOTAL) {
        const token = TOKENS[sent++ % TOKENS.length];
        const subject = `${name}.${token}`;
        const expected = last.get(subject) ?? 0;
        const opts = !cas
          ? undefined
          : cas === 'bare'
            ? { expect: { lastSubjectSequence: expected } }
            : { expect: { lastSubjectSequence: expected }, msgID: `${expected}@${token}` };
        inFlight++;
        js.publish(subject, DATA, opts).then((ack) => {
          last.set(subject, ack.seq);
          broadcast?.(subject, ack.seq, DATA);
          inFlight--;
          if (++acked === TOTAL) resolve();
          else if (inFlight <= WINDOW / 2) pump();
        }, reject);
      }
    };
    pump();
  });
  const rate = TOTAL / ((performance.now() - start) / 1000);
  await stop();
  return rate;
}

const variants = [
  ['plain', false, undefined],
  ['casbare', 'bare', undefined],
  ['cas', true, undefined],
  ['caspull', true, 'pull'],
  ['caspush', true, 'push'],
  ['casrp', true, 'republish'],
  ['casbc', true, 'broadcast'],
];
const rates = new Map(variants.map(([name]) => [name, []]));
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, cas, how] of variants) rates.get(name).push(await round(name, cas, how));
  }
} finally {
  await nc.close();
  await nats.close();
}
const best = (name) => Math.max(...rates.get(name));
for (const [name] of variants) {
  const each = rates
    .get(name)
    .map((x) => `${(x / 1000).toFixed(1)} k`)
    .join(', ');
  console.log(`${name.padEnd(8)} ${each}   best ${(best(name) / best('plain')).toFixed(2)}× plain`);
}
