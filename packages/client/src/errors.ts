import { GossipError } from '@gossip/protocol';

// The client's own errors, made where several of its parts raise the same condition.

export function closedError(): GossipError {
  return new GossipError('GOSSIP_ERR_CLIENT_CLOSED', 'the client is closed');
}

export function notConnectedError(): GossipError {
  return new GossipError(
    'GOSSIP_ERR_CONNECTION_CLOSED',
    'not connected: call connect() first, or set queueBeforeConnect: true to wait for it',
  );
}

export function invalidOption(message: string, cause?: unknown): GossipError {
  return new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', message, cause === undefined ? undefined : { cause });
}

/** `error` as a GossipError: itself, or GOSSIP_ERR_INVALID_ARGUMENT with it as the cause. */
export function asInvalidArgument(error: unknown): GossipError {
  return error instanceof GossipError
    ? error
    : new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', String(error), { cause: error });
}
