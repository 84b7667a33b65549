import { defineConfig } from "vitest/config";
import HeavyFirstSequencer from "./test/helpers/heavy-first-sequencer.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Readers stream real datasets (Fashion-MNIST, SpamAssassin); give them room on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Long files (model training, scans) first on a fresh clone too, so neither worker idles at the end.
    sequence: { sequencer: HeavyFirstSequencer },
  },
});
