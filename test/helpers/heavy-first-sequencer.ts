// The order test files start in. With two workers, a run ends when the last long file does: a
// 3-minute file that starts last leaves one core idle for 3 minutes. Vitest runs the longest
// files first when it has their durations from an earlier run (node_modules/.vite/vitest), and
// otherwise the largest files first — but the slowest files here are short ones that train
// models or scan, so on a fresh clone (CI) they would start near the end. This sequencer keeps
// vitest's order where it knows the durations and otherwise starts the files below first,
// longest first (seconds measured on a busy 2-core machine with a cold fixture cache, setup
// included; only the order matters, so a stale figure costs a little balance, nothing else).
import { BaseSequencer, type TestSpecification } from "vitest/node";

const MEASURED_SECONDS: Record<string, number> = {
  // A fresh clone's CI run (2026-12-07, two workers, cold fixture cache); the CLI files as measured
  // after the CLI stopped loading TensorFlow.js, pg and CycloneDX at start-up.
  "test/scan/scan-flips.test.ts": 240,
  "test/scan/scan-model-quality.test.ts": 208,
  "test/cli/provenance.test.ts": 100,
  "test/detect/spectral.test.ts": 85,
  "test/scan/scan-images.test.ts": 80,
  "test/cli/integrity.test.ts": 75,
  "test/detect/trigger-patches.test.ts": 49,
  "test/cli/outputs.test.ts": 40,
  "test/detect/confident-learning.test.ts": 39,
  "test/detect/proxy-image-cnn.test.ts": 36,
  "test/cli/audit.test.ts": 35,
  "test/audit/audit.test.ts": 33,
  "test/cli/cli.test.ts": 32,
  "test/cli/scan.test.ts": 30,
  "test/ledger/concurrency.test.ts": 26,
  "test/scan/scan-clean.test.ts": 23,
  "test/detect/activation-clustering.test.ts": 21,
  "test/detect/proxy-image.test.ts": 21,
  "test/detect/proxy-linear.test.ts": 19,
  "test/detect/trigger-tokens.test.ts": 18,
  "test/detect/trigger-tokens-natural.test.ts": 17,
  "test/scan/scan-annotators.test.ts": 16,
  "test/scan/scan-sources.test.ts": 16,
  "test/scan/scan-trigger.test.ts": 16,
  "test/nn/train.test.ts": 15,
  // The service's files, measured on a busy machine (2026-12-07).
  "test/scan/shard.test.ts": 40,
  "test/jobs/runners.test.ts": 30,
  "test/jobs/isolate.test.ts": 30,
  "test/server/load.test.ts": 25,
  "test/jobs/faults.test.ts": 20,
  "test/client/client.test.ts": 20,
};

export default class HeavyFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const known = (f: TestSpecification) =>
      this.ctx.cache.getFileTestResults(`${f.project.name}:${rel(root, f.moduleId)}`);
    if (sorted.every((f) => known(f) !== undefined)) return sorted; // vitest's own measured order
    const weight = (f: TestSpecification) => MEASURED_SECONDS[rel(root, f.moduleId)] ?? 0;
    // Stable: files of equal weight (all the unlisted ones) keep vitest's order.
    return sorted
      .map((f, i) => ({ f, i }))
      .sort((a, b) => weight(b.f) - weight(a.f) || a.i - b.i)
      .map(({ f }) => f);
  }
}

function rel(root: string, file: string): string {
  return file.startsWith(`${root}/`) ? file.slice(root.length + 1) : file;
}
