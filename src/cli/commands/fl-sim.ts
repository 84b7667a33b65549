// `antidote fl-sim`: simulate a federation on real Fashion-MNIST with F Byzantine clients and
// print, per aggregation rule, what the attack did to it: clean accuracy, the drop against
// the attack-free run, backdoor success, and how well the rule's flags found the attackers.
import { Option, type Command } from "commander";
import { z } from "zod";
import { FASHION_MNIST_CLASSES } from "../../data/builtin.js";
import { FL_ATTACKS } from "../../robust/fl/attacks.js";
import { simulateFederation, type FlRoundProgress, type FlSimResult } from "../../robust/fl/simulate.js";
import { AGGREGATION_RULES, type AggregationRule } from "../../robust/types.js";
import { parseFlags } from "../options.js";

const num = (v: unknown): unknown => (typeof v === "string" ? (v.trim() === "" ? Number.NaN : Number(v)) : v);

const flSimFlags = z
  .object({
    clients: z.preprocess(num, z.number().int().min(2)),
    byzantine: z.preprocess(num, z.number().int().min(0)),
    assumedByzantine: z.preprocess(num, z.number().int().min(0)).optional(),
    attack: z.enum(FL_ATTACKS as [string, ...string[]]),
    rules: z.string().transform((v, ctx) => {
      if (v.trim() === "all") return [...AGGREGATION_RULES];
      const names = v.split(",").map((r) => r.trim());
      const unknown = names.filter((r) => !(AGGREGATION_RULES as readonly string[]).includes(r));
      if (unknown.length > 0 || names.length === 0) {
        ctx.addIssue({
          code: "custom",
          message: `unknown rule ${unknown.join(", ") || "(none)"}; use all or a comma-separated list of ${AGGREGATION_RULES.join(", ")}`,
        });
        return z.NEVER;
      }
      return [...new Set(names)] as AggregationRule[];
    }),
    foolsgold: z.boolean().optional(),
    attackFreePerRule: z.boolean().optional(),
    rounds: z.preprocess(num, z.number().int().min(1)),
    split: z.enum(["iid", "dirichlet"]),
    alpha: z.preprocess(num, z.number().positive()),
    model: z.enum(["softmax", "mlp"]),
    hidden: z.preprocess(num, z.number().int().min(1)),
    localEpochs: z.preprocess(num, z.number().positive()),
    localSteps: z.preprocess(num, z.number().int().min(1)).optional(),
    batchSize: z.preprocess(num, z.number().int().min(1)),
    lr: z.preprocess(num, z.number().positive()),
    trainSize: z.preprocess(num, z.number().int().min(1).max(60_000)),
    testSize: z.preprocess(num, z.number().int().min(1).max(10_000)),
    flipScale: z.preprocess(num, z.number().positive()),
    epsilon: z.preprocess(num, z.number().positive()),
    direction: z.enum(["unit-mean", "std"]),
    target: z.string().transform((v, ctx) => {
      const byName = FASHION_MNIST_CLASSES.indexOf(v);
      const index = byName >= 0 ? byName : /^\d+$/.test(v) ? Number(v) : -1;
      if (index < 0 || index >= FASHION_MNIST_CLASSES.length) {
        ctx.addIssue({ code: "custom", message: `"${v}" is not a Fashion-MNIST class name or index 0–9` });
        return z.NEVER;
      }
      return index;
    }),
    seed: z.preprocess(num, z.number().int()),
    json: z.boolean().optional(),
  })
  .superRefine((f, ctx) => {
    if (f.byzantine >= f.clients)
      ctx.addIssue({
        code: "custom",
        path: ["byzantine"],
        message: `${f.byzantine} of ${f.clients} clients leaves no honest client; need fewer Byzantine clients than clients`,
      });
    if (f.assumedByzantine !== undefined && f.assumedByzantine >= f.clients)
      ctx.addIssue({
        code: "custom",
        path: ["assumedByzantine"],
        message: `must be below --clients (${f.clients})`,
      });
    if (f.trainSize < f.clients)
      ctx.addIssue({
        code: "custom",
        path: ["trainSize"],
        message: `${f.trainSize} samples cannot give each of ${f.clients} clients one`,
      });
  });

export function registerFlSim(program: Command): void {
  program
    .command("fl-sim")
    .description(
      "Simulate federated learning on Fashion-MNIST with Byzantine clients and compare robust aggregation rules",
    )
    .option("--clients <n>", "clients in the federation", "20")
    .option("--byzantine <f>", "how many of them are Byzantine (F)", "4")
    .option("--assumed-byzantine <f>", "the F the rules are told to tolerate (default: --byzantine)")
    .addOption(
      new Option("--attack <kind>", "what the Byzantine clients send")
        .choices(FL_ATTACKS)
        .default("sign-flip"),
    )
    .option("--rules <list>", `all, or a comma-separated list of ${AGGREGATION_RULES.join(", ")}`, "all")
    .option("--foolsgold", "also run FoolsGold's similarity-weighted mean")
    .option(
      "--attack-free-per-rule",
      "also run each rule without attackers (its own cost, apart from the attack's)",
    )
    .option("--rounds <r>", "federated rounds", "30")
    .addOption(
      new Option("--split <kind>", "how data is spread over clients")
        .choices(["iid", "dirichlet"])
        .default("iid"),
    )
    .option("--alpha <a>", "Dirichlet concentration for --split dirichlet (smaller: more label skew)", "0.5")
    .addOption(new Option("--model <kind>", "model trained").choices(["softmax", "mlp"]).default("softmax"))
    .option("--hidden <units>", "hidden units of the mlp", "64")
    .option("--local-epochs <e>", "local epochs per round", "1")
    .option("--local-steps <s>", "local minibatch steps per round (instead of epochs)")
    .option("--batch-size <b>", "local minibatch size", "32")
    .option("--lr <rate>", "local SGD learning rate", "0.1")
    .option("--train-size <n>", "training samples drawn from the 60,000 and spread over the clients", "6000")
    .option("--test-size <n>", "test samples drawn from the 10,000", "10000")
    .option("--flip-scale <k>", "sign-flip: attackers send −k × their update", "4")
    .option("--epsilon <e>", "ipm: attackers send −ε × the mean honest update", "10")
    .addOption(
      new Option("--direction <p>", "min-max: perturbation direction")
        .choices(["unit-mean", "std"])
        .default("unit-mean"),
    )
    .option("--target <class>", "scaling-backdoor: class the trigger should predict (name or index)", "0")
    .option("--seed <n>", "seed of the whole simulation", "1")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      `
Attacks: sign-flip (−k × own update), scaling-backdoor (3×3 patch trigger + model replacement boost n/F),
alie (A Little Is Enough: μ − z·σ), ipm (Inner Product Manipulation: −ε·μ), min-max (μ + γ·p, largest
γ keeping the update within the honest updates' spread). Attackers see the honest updates of the round.

Examples:
  antidote fl-sim --attack alie --rules mean,median,krum,multi-krum,norm-clip-mean
  antidote fl-sim --attack scaling-backdoor --target Bag --rules mean,krum,norm-clip-mean --rounds 20
  antidote fl-sim --attack min-max --split dirichlet --alpha 0.3 --model mlp --json`,
    )
    .action(async (flags: Record<string, unknown>) => {
      const f = parseFlags(flSimFlags, flags);
      const progress = roundProgress(!f.json);
      const result = await simulateFederation({
        clients: f.clients,
        byzantine: f.byzantine,
        assumedByzantine: f.assumedByzantine,
        attack: f.attack as FlSimResult["settings"]["attack"],
        rules: f.rules,
        foolsGold: f.foolsgold ?? false,
        attackFreePerRule: f.attackFreePerRule ?? false,
        rounds: f.rounds,
        split: f.split,
        alpha: f.alpha,
        model: f.model,
        hidden: f.hidden,
        localEpochs: f.localEpochs,
        localSteps: f.localSteps,
        batchSize: f.batchSize,
        learningRate: f.lr,
        trainSize: f.trainSize,
        testSize: f.testSize,
        flipScale: f.flipScale,
        ipmEpsilon: f.epsilon,
        minMaxDirection: f.direction,
        backdoorTarget: f.target,
        seed: f.seed,
        onRound: progress.update,
      });
      progress.stop();
      if (f.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
      else process.stdout.write(formatTable(result));
    });
}

/** The per-rule table a user reads. */
export function formatTable(result: FlSimResult): string {
  const s = result.settings;
  const backdoor = s.attack === "scaling-backdoor";
  const pct = (v: number | null): string => (v === null ? "—" : `${(100 * v).toFixed(1)}%`);
  const signed = (v: number | null): string =>
    v === null ? "—" : `${v >= 0 ? "+" : "−"}${(100 * Math.abs(v)).toFixed(1)}`;
  const own = s.attackFreePerRule;
  const header = [
    "rule",
    "clean acc",
    "Δ vs attack-free",
    ...(own ? ["rule w/o attack"] : []),
    "backdoor ASR",
    "attackers flagged",
    "honest flagged",
  ];
  const rows: string[][] = [
    [
      "attack-free (mean)",
      pct(result.attackFree.accuracy),
      "",
      ...(own ? [""] : []),
      backdoor ? pct(result.attackFree.backdoorSuccess) : "—",
      "—",
      "—",
    ],
  ];
  const skipped: string[] = [];
  for (const run of result.runs) {
    if (run.skipped !== null) {
      rows.push([run.rule, "skipped", ...header.slice(2).map(() => "")]);
      skipped.push(`  ${run.rule}: ${run.skipped}`);
      continue;
    }
    rows.push([
      run.rule,
      pct(run.accuracy),
      signed(run.deltaVsAttackFree),
      ...(own ? [pct(run.ruleAttackFreeAccuracy)] : []),
      backdoor ? pct(run.backdoorSuccess) : "—",
      pct(run.flags?.recall ?? null),
      pct(run.flags?.falsePositiveRate ?? null),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ") + "\n";
  const title =
    `fl-sim: ${s.clients} clients, ${result.byzantineClients.length} Byzantine (${s.attack}), ${s.rounds} rounds, ` +
    `${s.split}${s.split === "dirichlet" ? ` α=${s.alpha}` : ""}, ${s.model} (${result.parameters.toLocaleString("en-US")} parameters), ` +
    `${s.trainSize.toLocaleString("en-US")} train / ${s.testSize.toLocaleString("en-US")} test samples, seed ${String(s.seed)}\n`;
  return (
    title +
    "\n" +
    line(header) +
    rows.map(line).join("") +
    (skipped.length > 0 ? `\nskipped (the rule's own bound on n and F):\n${skipped.join("\n")}\n` : "") +
    `\n${result.seconds.toFixed(1)} s\n`
  );
}

// One status line per round on stderr, only on a terminal and never with --json.
function roundProgress(enabled: boolean): { update: (p: FlRoundProgress) => void; stop: () => void } {
  if (!enabled || !process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  return {
    update: (p) =>
      process.stderr.write(
        `\r\x1b[2Kfl-sim: run ${p.run}/${p.runs} ${p.rule}${p.attacked ? "" : " (no attack)"}, round ${p.round}/${p.rounds}`,
      ),
    stop: () => process.stderr.write("\r\x1b[2K"),
  };
}
