import { GossipError } from '@gossip/protocol';
import { expect } from 'vitest';

/** Expects `p` to reject with a GossipError of `code`. */
export async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected a rejection with ${code}`).toBeInstanceOf(GossipError);
  expect((error as GossipError).code).toBe(code);
}
