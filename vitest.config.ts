import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
    env: { GRAPHILE_ENV: "production" },
    globalSetup: ["test/helpers/global-setup.ts"],
    // Tests share one PostgreSQL server, each file in its own cloned database; 2 cores here.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
