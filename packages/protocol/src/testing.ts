/**
 * Helpers for tests: an encoder that sends what a well-behaved client never would, and
 * a seeded random generator.
 * Not part of the stable API.
 */
import { FrameEncoder } from './encoder.js';

/** An encoder that skips the id checks, to send oversize or empty ids on purpose. */
export function uncheckedEncoder(): FrameEncoder {
  return new FrameEncoder({ unchecked: true });
}

/**
 * mulberry32: a small seeded generator of numbers in [0, 1), so that a randomised test
 * that fails can be run again with the same seed.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
