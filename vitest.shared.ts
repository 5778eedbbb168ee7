import { fileURLToPath } from 'node:url';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

/** Unit tests import `@gossip/*` from source, so they need no build. */
export const sourceAliases = {
  // before '@gossip/protocol', which would otherwise take the subpath as its own
  '@gossip/protocol/testing': fileURLToPath(new URL('./packages/protocol/src/testing.ts', import.meta.url)),
  '@gossip/protocol': src('protocol'),
  '@gossip/store': src('store'),
  '@gossip/server': src('server'),
  '@gossip/client': src('client'),
};
