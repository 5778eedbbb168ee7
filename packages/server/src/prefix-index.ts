/**
 * One node of the trie: the values whose prefix ends here, and the nodes one code unit
 * further. A set, not a list: "" may be held by thousands of connections, and each one
 * leaving must not scan all the others; iterating it costs the per-message walk no more.
 */
interface TrieNode<T> {
  next: Map<number, TrieNode<T>> | undefined;
  values: Set<T> | undefined;
}

const node = <T>(): TrieNode<T> => ({ next: undefined, values: undefined });

/**
 * Values filed under string prefixes, found by the strings that start with their prefix
 * (docs/PROTOCOL.md, B7): the server keeps every subscribed prefix of every connection
 * here, once, and matches a message by walking its id from the root, so the cost is
 * the id's length (at most) plus the values found, not connections × prefixes.
 *
 * Keyed by UTF-16 code units, as JavaScript compares strings. For well-formed strings,
 * and ids and prefixes are (the decoder refuses invalid UTF-8), a prefix of the code
 * units is a prefix of the UTF-8 bytes and the other way round (B1).
 */
export class PrefixIndex<T> {
  readonly #root: TrieNode<T> = node();
  #size = 0;

  /** Values filed. */
  get size(): number {
    return this.#size;
  }

  /** Files `value` under `prefix`; filing it there again changes nothing. */
  add(prefix: string, value: T): void {
    let at = this.#root;
    for (let k = 0; k < prefix.length; k++) {
      const c = prefix.charCodeAt(k);
      at.next ??= new Map();
      let child = at.next.get(c);
      if (child === undefined) {
        child = node();
        at.next.set(c, child);
      }
      at = child;
    }
    const values = (at.values ??= new Set());
    if (values.has(value)) return;
    values.add(value);
    this.#size++;
  }

  /** Removes `value` filed under `prefix`, and the nodes left with nothing below them; returns whether it was there. */
  remove(prefix: string, value: T): boolean {
    const path: TrieNode<T>[] = [this.#root];
    let at = this.#root;
    for (let k = 0; k < prefix.length; k++) {
      const child = at.next?.get(prefix.charCodeAt(k));
      if (child === undefined) return false;
      path.push(child);
      at = child;
    }
    const values = at.values;
    if (values === undefined || !values.delete(value)) return false;
    if (values.size === 0) at.values = undefined;
    this.#size--;
    for (let k = prefix.length; k > 0; k--) {
      const n = path[k] as TrieNode<T>;
      if (n.values !== undefined || (n.next !== undefined && n.next.size > 0)) break;
      const parent = path[k - 1] as TrieNode<T>;
      parent.next?.delete(prefix.charCodeAt(k - 1));
      if (parent.next?.size === 0) parent.next = undefined;
    }
    return true;
  }

  /**
   * Appends to `out` every value whose prefix starts `id`, shortest prefix first, and
   * returns how many it appended.
   */
  collect(id: string, out: T[]): number {
    let at: TrieNode<T> | undefined = this.#root;
    let found = 0;
    for (let k = 0; ; k++) {
      const values: Set<T> | undefined = at.values;
      if (values !== undefined) {
        for (const v of values) out.push(v);
        found += values.size;
      }
      if (k === id.length || at.next === undefined) return found;
      at = at.next.get(id.charCodeAt(k));
      if (at === undefined) return found;
    }
  }
}
