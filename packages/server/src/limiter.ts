/** Runs at most `capacity` tasks at once; the others wait their turn in the order they came. */
export class Limiter {
  readonly capacity: number;
  #active = 0;
  #waiting: (() => void)[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active < this.capacity) this.#active++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve)); // the slot is handed over
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}
