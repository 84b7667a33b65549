// fl-sim on real Fashion-MNIST (2,000 training and 2,000 test images drawn with a fixed seed,
// 20 clients, 20 rounds of one local epoch): which rule survives which attack. Thresholds are
// the claims of the papers, checked against a FedAvg run with the same seed and no attackers.
import { Command } from "commander";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { registerFlSim } from "../../src/cli/commands/fl-sim.js";
import type { AggregationRule } from "../../src/robust/types.js";
import { isAntidoteError } from "../../src/errors.js";
import { labelEntropy, partitionClients } from "../../src/robust/fl/partition.js";
import {
  loadFlData,
  simulateFederation,
  type FlData,
  type FlRunResult,
  type FlSimOptions,
  type FlSimResult,
} from "../../src/robust/fl/simulate.js";

let data: FlData;
beforeAll(async () => {
  data = await loadFlData({ trainSize: 2000, testSize: 2000, rootSize: 100, seed: 1 });
});

const BASE: FlSimOptions = {
  clients: 20,
  byzantine: 4,
  rounds: 20,
  batchSize: 20,
  learningRate: 0.1,
  seed: 1,
};

const run = (result: FlSimResult, rule: string): FlRunResult => {
  const r = result.runs.find((x) => x.rule === rule);
  if (r === undefined || r.accuracy === null) throw new Error(`${rule} did not run`);
  return r;
};
const best = (result: FlSimResult, rules: string[]): FlRunResult =>
  rules.map((r) => run(result, r)).reduce((a, b) => (b.accuracy! > a.accuracy! ? b : a));

describe("partition", () => {
  it("Dirichlet(0.3) skews labels per client; both splits assign every sample exactly once", () => {
    const labels = data.train.y;
    const iid = partitionClients(labels, { clients: 20, split: "iid", seed: 1 });
    const dir = partitionClients(labels, { clients: 20, split: "dirichlet", alpha: 0.3, seed: 1 });
    for (const parts of [iid, dir]) {
      expect(parts).toHaveLength(20);
      expect(parts.every((p) => p.length > 0)).toBe(true);
      const all = parts.flat().sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: labels.length }, (_, i) => i));
    }
    const entropy = (parts: number[][]): number =>
      parts.reduce((s, p) => s + labelEntropy(p, labels, 10), 0) / parts.length;
    // IID clients see nearly all 10 classes (log2 10 ≈ 3.32 bits); Dirichlet(0.3) clients a few.
    expect(entropy(iid)).toBeGreaterThan(3.1);
    expect(entropy(dir)).toBeLessThan(entropy(iid) - 1);
    // Seeded: the same seed gives the same split, another seed another.
    expect(partitionClients(labels, { clients: 20, split: "dirichlet", alpha: 0.3, seed: 1 })).toEqual(dir);
    expect(partitionClients(labels, { clients: 20, split: "dirichlet", alpha: 0.3, seed: 2 })).not.toEqual(
      dir,
    );
  });
});

describe("fl-sim on Fashion-MNIST", () => {
  const ROBUST: AggregationRule[] = ["median", "trimmed-mean", "multi-krum", "geometric-median"];

  it("sign-flip (20% attackers, −4×): FedAvg collapses, a robust rule stays within 3 points and flags them", async () => {
    const result = await simulateFederation({
      ...BASE,
      data,
      attack: "sign-flip",
      rules: ["mean", ...ROBUST],
    });
    const reference = result.attackFree.accuracy;
    expect(reference).toBeGreaterThan(0.7);
    expect(result.byzantineClients).toHaveLength(4);
    // FedAvg's average step is 0.8·μ − 0.2·4·μ' ≈ 0: the model never learns.
    expect(run(result, "mean").accuracy!).toBeLessThan(reference - 0.3);
    expect(best(result, ROBUST).accuracy!).toBeGreaterThan(reference - 0.03);
    // A −4× update sits far from the aggregate: some rule flags nearly every attacker in every
    // round while flagging few honest clients.
    const flags = ROBUST.map((r) => run(result, r).flags!);
    expect(flags.some((f) => f.recall! >= 0.9 && f.falsePositiveRate! <= 0.1 && f.precision! >= 0.7)).toBe(
      true,
    );
  });

  it("ALIE (20% attackers): the best rule stays within 3 points; ALIE slips past the outlier flags, not FoolsGold", async () => {
    const rules: AggregationRule[] = ["mean", "median", "krum", "multi-krum", "norm-clip-mean"];
    const result = await simulateFederation({ ...BASE, data, attack: "alie", rules, foolsGold: true });
    const reference = result.attackFree.accuracy;
    expect(best(result, rules).accuracy!).toBeGreaterThan(reference - 0.03);
    // What is true here, not what the paper shows on deep nets: with n = 20, F = 4, z = 0.385
    // and one local epoch, μ − zσ is close to μ and the mean moves by only F/n·z·σ, so plain
    // FedAvg is not hurt by more than 3 points either.
    expect(Math.abs(run(result, "mean").accuracy! - reference)).toBeLessThan(0.03);
    // ALIE's point is stealth: an update at μ − zσ is no outlier in distance, norm or cosine...
    for (const r of ["mean", "median", "norm-clip-mean"])
      expect(run(result, r).flags!.recall!).toBeLessThan(0.1);
    // ...but the F attackers send the same vector, which is what FoolsGold looks for.
    const fg = run(result, "foolsgold").flags!;
    expect(fg.recall!).toBeGreaterThan(0.9);
    expect(fg.falsePositiveRate!).toBeLessThan(0.1);
  });

  it("model replacement (10% attackers, boost n/F): the backdoor wins under FedAvg, not under Krum or norm clipping", async () => {
    const result = await simulateFederation({
      ...BASE,
      data,
      byzantine: 2,
      attack: "scaling-backdoor",
      rules: ["mean", "krum", "norm-clip-mean"],
    });
    const baseline = result.attackFree.backdoorSuccess!;
    // A clean model rarely calls a patched Shirt a T-shirt/top.
    expect(baseline).toBeLessThan(0.1);
    const mean = run(result, "mean");
    expect(mean.backdoorSuccess!).toBeGreaterThan(0.8);
    // The replaced model is still a working classifier: the backdoor hides behind clean accuracy.
    expect(mean.accuracy!).toBeGreaterThan(result.attackFree.accuracy - 0.1);
    expect(run(result, "krum").backdoorSuccess!).toBeLessThan(baseline + 0.05);
    expect(run(result, "norm-clip-mean").backdoorSuccess!).toBeLessThan(baseline + 0.1);
  });
});

describe("antidote fl-sim", () => {
  async function cli(args: string[]): Promise<string> {
    const program = new Command().exitOverride();
    registerFlSim(program);
    const chunks: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    try {
      await program.parseAsync(["fl-sim", ...args], { from: "user" });
    } finally {
      spy.mockRestore();
    }
    return chunks.join("");
  }

  it("reports a rule beyond its own bound as skipped instead of failing the table", async () => {
    const out = await cli(
      "--clients 6 --byzantine 2 --attack ipm --rules mean,krum,median --rounds 2 --train-size 300 --test-size 200".split(
        " ",
      ),
    );
    expect(out).toMatch(/^attack-free \(mean\)\s+\d+\.\d%/m);
    expect(out).toMatch(/^krum\s+skipped/m);
    expect(out).toMatch(/krum: krum tolerates F Byzantine clients only when n > 2F \+ 2: got n = 6, F = 2/);
    expect(out).toMatch(/^median\s+\d+\.\d%\s+[+−]\d+\.\d/m);
  });

  it("rejects F ≥ clients and an unknown rule with one usage error naming the flag", async () => {
    for (const [args, message] of [
      [["--clients", "5", "--byzantine", "5"], /--byzantine: 5 of 5 clients leaves no honest client/],
      [["--rules", "mean,krumm"], /--rules: unknown rule krumm/],
      [["--target", "Hat"], /--target: "Hat" is not a Fashion-MNIST class/],
    ] as const) {
      const error: unknown = await cli([...args]).catch((e: unknown) => e);
      expect(isAntidoteError(error) && error.code === "USAGE").toBe(true);
      expect((error as Error).message).toMatch(message);
    }
  });
});
