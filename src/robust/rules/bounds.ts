// How many Byzantine clients each rule tolerates, and the checks on a round's options. A rule
// asked to tolerate more than its bound gives no guarantee at all, so that is a usage error that
// says the bound, the numbers, and the largest F that would work.
import { AntidoteError } from "../../errors.js";
import type { AggregateOptions, AggregationRule } from "../types.js";

interface Bound {
  /** The condition as the papers write it. */
  text: string;
  /** Largest F for n clients (negative when no F works). */
  maxF: (n: number) => number;
}

const BOUNDS: Partial<Record<AggregationRule, Bound>> = {
  krum: { text: "n > 2F + 2", maxF: (n) => Math.floor((n - 3) / 2) },
  "multi-krum": { text: "n > 2F + 2", maxF: (n) => Math.floor((n - 3) / 2) },
  median: { text: "n > 2F", maxF: (n) => Math.floor((n - 1) / 2) },
  bulyan: { text: "n ≥ 4F + 3", maxF: (n) => Math.floor((n - 3) / 4) },
  "geometric-median": { text: "n > 2F", maxF: (n) => Math.floor((n - 1) / 2) },
};

function nonNegativeInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0)
    throw new AntidoteError("USAGE", `${name} must be a non-negative integer: got ${value}.`);
}

/** Throws USAGE for an empty round, a bad option, or F beyond the rule's bound. */
export function checkRound(n: number, d: number, options: AggregateOptions): void {
  const { rule, byzantine: f } = options;
  if (n === 0) throw new AntidoteError("USAGE", `no client updates to aggregate: the round is empty.`);
  nonNegativeInteger(f, "byzantine (F, the number of Byzantine clients to tolerate)");
  const bound = BOUNDS[rule];
  if (bound !== undefined && f > bound.maxF(n)) {
    const max = bound.maxF(n);
    const hint =
      max >= 0
        ? `with ${n} client${n === 1 ? "" : "s"}, F ≤ ${max}`
        : `${rule} needs at least ${minClients(bound)} clients`;
    throw new AntidoteError(
      "USAGE",
      `${rule} tolerates F Byzantine clients only when ${bound.text}: got n = ${n}, F = ${f} (${hint}).`,
    );
  }
  if (rule === "trimmed-mean") {
    const trim = options.trim ?? f;
    nonNegativeInteger(trim, "trim");
    if (n <= 2 * trim) {
      const max = Math.floor((n - 1) / 2);
      throw new AntidoteError(
        "USAGE",
        `trimmed-mean drops trim values from each end of every coordinate, so it needs n > 2·trim: ` +
          `got n = ${n}, trim = ${trim} (with ${n} client${n === 1 ? "" : "s"}, trim ≤ ${max}).`,
      );
    }
  }
  if (rule === "multi-krum" && options.multiKrumSelect !== undefined) {
    const m = options.multiKrumSelect;
    if (!Number.isInteger(m) || m < 1 || m > n)
      throw new AntidoteError(
        "USAGE",
        `multi-krum averages the m = multiKrumSelect best-scored updates, so 1 ≤ m ≤ n: got m = ${m} with n = ${n}.`,
      );
  }
  if (rule === "fltrust") {
    if (options.rootUpdate === undefined)
      throw new AntidoteError(
        "USAGE",
        `fltrust needs the server's root update (rootUpdate: its own update on a clean root dataset), and none was given.`,
      );
    if (options.rootUpdate.length !== d)
      throw new AntidoteError(
        "USAGE",
        `fltrust's root update has ${options.rootUpdate.length} coordinates but the client updates have ${d}: they must be the same model.`,
      );
    let sq = 0;
    for (let k = 0; k < d; k++) sq += options.rootUpdate[k]! * options.rootUpdate[k]!;
    if (!Number.isFinite(sq))
      throw new AntidoteError("USAGE", `fltrust's root update contains NaN or ±Infinity.`);
  }
  if (options.clipNorm !== undefined && !(options.clipNorm > 0 && Number.isFinite(options.clipNorm)))
    throw new AntidoteError("USAGE", `clipNorm must be a positive finite number: got ${options.clipNorm}.`);
  if (
    options.maxIterations !== undefined &&
    !(Number.isInteger(options.maxIterations) && options.maxIterations >= 1)
  )
    throw new AntidoteError(
      "USAGE",
      `maxIterations must be a positive integer: got ${options.maxIterations}.`,
    );
  if (options.tolerance !== undefined && !(options.tolerance >= 0 && Number.isFinite(options.tolerance)))
    throw new AntidoteError(
      "USAGE",
      `tolerance must be a non-negative finite number: got ${options.tolerance}.`,
    );
  if (options.blockSize !== undefined && !(Number.isInteger(options.blockSize) && options.blockSize >= 1))
    throw new AntidoteError("USAGE", `blockSize must be a positive integer: got ${options.blockSize}.`);
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1))
    throw new AntidoteError("USAGE", `threads must be a positive integer: got ${options.threads}.`);
}

function minClients(bound: Bound): number {
  let n = 1;
  while (bound.maxF(n) < 0) n++;
  return n;
}
