import { defineConfig } from 'vitest/config';

// End-to-end tests run the built gossipd (turbo builds it first) and talk to it over TCP.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
