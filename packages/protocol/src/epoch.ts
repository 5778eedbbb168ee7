import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from './errors.js';
import { EPOCH_BYTES } from './limits.js';

/** A log identity: 16 random bytes, written as 32 lowercase hex digits. */
export type Epoch = string;

const EPOCH_RE = /^[0-9a-f]{32}$/;

/** A fresh random epoch. */
export function newEpoch(): Epoch {
  return randomBytes(EPOCH_BYTES).toString('hex');
}

/** Whether a string is a well-formed epoch. */
export function isEpoch(value: unknown): value is Epoch {
  return typeof value === 'string' && EPOCH_RE.test(value);
}

export function checkEpoch(value: string): void {
  if (!isEpoch(value))
    throw new InvalidArgumentError(`epoch must be 32 lowercase hex digits, got ${JSON.stringify(value)}`);
}
