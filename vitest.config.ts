import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import SummaryReporter from './test/summary-reporter.js';

export default defineConfig({
  resolve: {
    // The sample imports the package by its name; in tests that name means the sources.
    alias: { 'nest-sessions': fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', new SummaryReporter()],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
