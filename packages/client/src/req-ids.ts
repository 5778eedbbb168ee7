/**
 * The reqIds of one client (P3): non-zero, distinct among what waits for an answer,
 * shared by the parts that send requests (publishes and fetches, subscribes and
 * unsubscribes) so that an ack finds its one owner.
 */
export class ReqIds {
  #next = 1;

  next(): number {
    const reqId = this.#next++;
    if (this.#next > 0xffffffff) this.#next = 1;
    return reqId;
  }
}
