import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // TMPDIR points at one directory per run, removed at its end (test/helpers/global-setup.ts).
    globalSetup: ['test/helpers/global-setup.ts'],
    // e2e tests spawn the built binary and local servers; keep them bounded but not flaky on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
