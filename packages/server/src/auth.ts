import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Auth tokens, kept as SHA-256 digests only: the plain tokens are not held in memory
 * after construction. A presented token is hashed and compared with every digest in
 * constant time, so neither the match nor its position leaks through timing.
 */
export class TokenSet {
  readonly #digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.#digests = tokens.map(digest);
  }

  get enabled(): boolean {
    return this.#digests.length > 0;
  }

  verify(token: string | undefined): boolean {
    if (!this.enabled) return true;
    const presented = digest(token ?? '');
    let ok = false;
    for (const d of this.#digests) ok = timingSafeEqual(d, presented) || ok;
    return ok;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
