import { defineConfig } from 'vitest/config';

// Dawn must not be acquired inside worker threads: run test files in forked processes.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    setupFiles: ['test/fast-check-seed.ts'],
  },
});
