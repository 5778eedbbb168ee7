/**
 * Where a cluster keeps its log in NATS (docs/CLUSTER.md, "Mapping"). One JetStream
 * stream per cluster name; in it, one subject per id, whose last message is the id's
 * newest value (the stream keeps one message per subject), and the cluster's own
 * records (its epoch, its horizon). Emits go over core NATS, outside the stream: they
 * are never stored.
 */
export interface Subjects {
  /** The JetStream stream: `GOSSIP_<name>`. */
  readonly stream: string;
  /** What the stream takes: the ids' subjects and the meta subjects. */
  readonly filters: string[];
  /** The subject the cluster's epoch is written to, once. */
  readonly epoch: string;
  /** The subject of the cluster's tombstone horizon: its last message is the horizon. */
  readonly horizon: string;
  /** Emits: core NATS, never in the stream. */
  readonly emit: string;
  /** What the stream took, handed from edge to edge (fanout.ts): core NATS, outside the stream. */
  readonly fanout: string;
  /** The subject of `id`. */
  idSubject(id: string): string;
  /**
   * The id of an id subject; undefined for a meta subject, and for a token no edge
   * writes (not the canonical base64url of UTF-8: another spelling would name an id
   * twice).
   */
  idOf(subject: string): string | undefined;
  /** Whether `subject` is an id's (idOf gives its id), without decoding it. */
  isIdSubject(subject: string): boolean;
}

/** The subjects of the cluster `name`, a name gossipd's config has checked (config.ts `checkClusterName`). */
export function subjects(name: string): Subjects {
  const base = `gossip.${name}`;
  const idBase = `${base}.id.`;
  return {
    stream: `GOSSIP_${name}`,
    filters: [`${base}.id.>`, `${base}.meta.>`],
    epoch: `${base}.meta.epoch`,
    horizon: `${base}.meta.horizon`,
    emit: `${base}.emit`,
    fanout: `${base}.fanout`,
    // base64url: an id is any UTF-8, a subject token may not hold '.', '*', '>' or spaces.
    idSubject: (id) => idBase + Buffer.from(id, 'utf8').toString('base64url'),
    isIdSubject: (subject) => subject.startsWith(idBase),
    idOf: (subject) => {
      if (!subject.startsWith(idBase)) return undefined;
      const token = subject.slice(idBase.length);
      const id = Buffer.from(token, 'base64url').toString('utf8');
      return Buffer.from(id, 'utf8').toString('base64url') === token ? id : undefined;
    },
  };
}
