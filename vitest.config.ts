import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Store suites share real servers; files run in parallel, tests inside a file in order.
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
