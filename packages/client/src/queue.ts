/**
 * A FIFO on a growable ring buffer: push and shift are O(1), unlike `Array#shift`,
 * which moves every element.
 */
export class RingQueue<T> {
  #items: (T | undefined)[] = new Array(16);
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(item: T): void {
    if (this.#size === this.#items.length) {
      const bigger = new Array<T | undefined>(this.#items.length * 2);
      for (let i = 0; i < this.#size; i++) bigger[i] = this.#items[(this.#head + i) % this.#items.length];
      this.#items = bigger;
      this.#head = 0;
    }
    this.#items[(this.#head + this.#size) % this.#items.length] = item;
    this.#size++;
  }

  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size--;
    return item;
  }

  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#items[this.#head];
  }

  /** Removes and returns every item. */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    return out;
  }

  /** Removes the items `pred` accepts; returns them. */
  remove(pred: (item: T) => boolean): T[] {
    const keep: T[] = [];
    const gone: T[] = [];
    for (const item of this.drain()) (pred(item) ? gone : keep).push(item);
    for (const item of keep) this.push(item);
    return gone;
  }
}
