/**
 * Helpers for tests that must send what a well-behaved client never would.
 * Not part of the stable API.
 */
import { FrameEncoder } from './encoder.js';

/** An encoder that skips the id checks, to send oversize or empty ids on purpose. */
export function uncheckedEncoder(): FrameEncoder {
  return new FrameEncoder({ unchecked: true });
}
