// Byzantine-robust aggregation of one federated round: the entry point behind `antidote
// aggregate` and fl-sim. Checks the round against the rule's tolerance bound, opens the block
// engine (rules/engine.ts) sized for the round, runs the rule and adds the engine's numbers to
// the details. Every rule reads the updates only through `UpdateMatrix.columns`, one block of
// `blockSize` coordinates per client at a time, so a file-backed round never has to fit in memory.
//
// Updates are assumed finite: the update loaders reject a client whose update holds NaN or
// ±Infinity before calling this. A library caller that skips them gets an INPUT_FORMAT error
// naming the client (client-scores.ts), never a silent NaN aggregate.
import { checkRound } from "./rules/bounds.js";
import { coordinateMedian, trimmedMean } from "./rules/coordinate.js";
import { defaultBlockSize, defaultThreads } from "./rules/engine.js";
import { fltrust } from "./rules/fltrust.js";
import { geometricMedian } from "./rules/geometric-median.js";
import { bulyan, krum, multiKrum } from "./rules/krum.js";
import { mean } from "./rules/mean.js";
import { normClipMean } from "./rules/norm-clip.js";
import { openEngine } from "./rules/passes.js";
import type { RuleOutput } from "./rules/rule.js";
import type { AggregateOptions, AggregateResult, AggregationRule, UpdateMatrix } from "./types.js";

/** Rules that compare every pair of updates (the n × n Gram pass). */
const PAIRWISE: ReadonlySet<AggregationRule> = new Set(["krum", "multi-krum", "bulyan"]);

/** Multiply-adds (roughly) a rule spends, to decide whether worker threads pay for themselves. */
function work(rule: AggregationRule, n: number, d: number, iterations: number): number {
  if (PAIRWISE.has(rule)) return (n * n * d) / 2 + 4 * n * d;
  if (rule === "median" || rule === "trimmed-mean") return 12 * n * d;
  if (rule === "geometric-median") return 4 * n * d * Math.min(iterations, 20);
  return 8 * n * d;
}

export function aggregate(updates: UpdateMatrix, options: AggregateOptions): AggregateResult {
  const n = updates.clients;
  const d = updates.dimension;
  checkRound(n, d, options);
  const f = options.byzantine;
  const blockSize = options.blockSize ?? defaultBlockSize(n, d);
  const threads = options.threads ?? defaultThreads(work(options.rule, n, d, options.maxIterations ?? 100));
  const engine = openEngine(updates, {
    blockSize,
    threads,
    gram: PAIRWISE.has(options.rule),
    onProgress: options.onProgress,
  });
  let out: RuleOutput;
  try {
    out = run(engine, options);
  } finally {
    engine.close();
  }
  return {
    rule: options.rule,
    byzantine: f,
    aggregate: out.aggregate,
    clients: out.clients,
    details: {
      ...out.details,
      blockSize: engine.blockSize,
      threads: engine.threads,
      passes: engine.passes,
      ...(PAIRWISE.has(options.rule) && { gramKernel: engine.usesWasm ? "wasm-simd" : "javascript" }),
      ...(engine.threads > 1 && { tasksOnWorkers: `${engine.tasksOnWorkers} of ${engine.tasksRun}` }),
    },
  };
}

function run(engine: ReturnType<typeof openEngine>, options: AggregateOptions): RuleOutput {
  const f = options.byzantine;
  switch (options.rule) {
    case "mean":
      return mean(engine);
    case "krum":
      return krum(engine, f);
    case "multi-krum":
      return multiKrum(engine, f, options.multiKrumSelect);
    case "median":
      return coordinateMedian(engine);
    case "trimmed-mean":
      return trimmedMean(engine, options.trim ?? f);
    case "bulyan":
      return bulyan(engine, f);
    case "geometric-median":
      return geometricMedian(engine, options.maxIterations, options.tolerance);
    case "fltrust":
      // checkRound has made sure the root update is there and has d coordinates.
      return fltrust(engine, options.rootUpdate!);
    case "norm-clip-mean":
      return normClipMean(engine, options.clipNorm);
  }
}
