import { defineConfig } from "vitest/config";
import HeavyFirstSequencer from "./test/helpers/heavy-first-sequencer.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Readers stream real datasets (Fashion-MNIST, SpamAssassin); give them room on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Vitest's default is one worker fewer than the CPUs: on this 2-core machine, one, and the
    // suite ran serially (vitest 1,506 s for 1,423 s of tests). Many files wait on child
    // processes (the CLI, PostgreSQL) more than they compute, so two overlap well.
    maxWorkers: 2,
    // Long files (model training, scans) first on a fresh clone too, so neither worker idles at the end.
    sequence: { sequencer: HeavyFirstSequencer },
  },
});
