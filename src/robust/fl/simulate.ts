// A federated-learning simulator on real Fashion-MNIST that answers "which aggregation rule
// survives which Byzantine attack": the same seeded federation (same partition, same
// initial model, same minibatch order for every client and round) is run once per rule,
// once with the attackers behaving honestly (the attack-free reference), and optionally
// with FoolsGold's reweighting; each run reports clean test accuracy, backdoor success and
// how well the rule's per-client flags found the attackers.
import { z } from "zod";
import { FASHION_MNIST_CLASSES } from "../../data/builtin.js";
import { openDataset } from "../../data/open.js";
import { AntidoteError, isAntidoteError } from "../../errors.js";
import { Rng } from "../../math/rng.js";
import { aggregate } from "../aggregate.js";
import { foolsGold } from "../foolsgold.js";
import { inMemoryUpdates } from "../matrix.js";
import { AGGREGATION_RULES, type AggregationRule } from "../types.js";
import {
  backdoorTrainingSet,
  craftByzantineUpdates,
  FL_ATTACKS,
  withTrigger,
  type AttackParameters,
  type FlAttack,
} from "./attacks.js";
import { initParameters, modelSpec, Trainer, type Examples, type LocalTraining } from "./model.js";
import { partitionClients } from "./partition.js";

/** A run of the federation: one aggregation rule, or FoolsGold's similarity-weighted mean. */
export type FlRunRule = AggregationRule | "foolsgold";

export const flSimOptionsSchema = z
  .strictObject({
    clients: z.number().int().min(2).default(20),
    /** F: how many clients are Byzantine. */
    byzantine: z.number().int().min(0).default(4),
    /** The F the rules are told to tolerate (default: the true F). */
    assumedByzantine: z.number().int().min(0).optional(),
    attack: z.enum(FL_ATTACKS as [FlAttack, ...FlAttack[]]).default("sign-flip"),
    rules: z
      .array(z.enum(AGGREGATION_RULES as [AggregationRule, ...AggregationRule[]]))
      .min(1)
      .default([...AGGREGATION_RULES]),
    /** Also run FoolsGold (Fung et al., 2020) as a rule of its own. */
    foolsGold: z.boolean().default(false),
    /**
     * Also run every rule without attackers, to tell the rule's own cost (a median or Krum
     * loses accuracy on skewed data even when nobody attacks) from the attack's damage.
     */
    attackFreePerRule: z.boolean().default(false),
    rounds: z.number().int().min(1).default(30),
    split: z.enum(["iid", "dirichlet"]).default("iid"),
    alpha: z.number().positive().default(0.5),
    model: z.enum(["softmax", "mlp"]).default("softmax"),
    hidden: z.number().int().min(1).default(64),
    localEpochs: z.number().positive().default(1),
    /** Minibatch steps per round instead of epochs. */
    localSteps: z.number().int().min(1).optional(),
    batchSize: z.number().int().min(1).default(32),
    learningRate: z.number().positive().default(0.1),
    /** Training samples drawn (seeded) from the 60,000 and spread over the clients. */
    trainSize: z.number().int().min(1).max(60_000).default(6000),
    /** Test samples drawn (seeded) from the 10,000 for accuracy and backdoor success. */
    testSize: z.number().int().min(1).max(10_000).default(10_000),
    /** FLTrust's clean root dataset held by the server, disjoint from the clients' data. */
    rootSize: z.number().int().min(1).default(100),
    seed: z.union([z.number().int(), z.string().min(1)]).default(1),
    flipScale: z.number().positive().default(4),
    ipmEpsilon: z.number().positive().default(10),
    alieZ: z.number().positive().optional(),
    minMaxDirection: z.enum(["unit-mean", "std"]).default("unit-mean"),
    /** scaling-backdoor: boost factor (default n / F). */
    boost: z.number().positive().optional(),
    /** scaling-backdoor: target class index. */
    backdoorTarget: z.number().int().min(0).max(9).default(0),
    /** scaling-backdoor: triggered copies added, as a share of the attacker's own sample count. */
    poisonFraction: z.number().positive().max(1).default(0.5),
    /** Evaluate test accuracy every this many rounds as well as at the end (0: only at the end). */
    evaluateEvery: z.number().int().min(0).default(0),
  })
  .superRefine((o, ctx) => {
    if (o.byzantine >= o.clients)
      ctx.addIssue({
        code: "custom",
        path: ["byzantine"],
        message: `${o.byzantine} Byzantine clients of ${o.clients} leaves no honest client; need F < clients`,
      });
    if ((o.assumedByzantine ?? 0) >= o.clients)
      ctx.addIssue({
        code: "custom",
        path: ["assumedByzantine"],
        message: `must be below clients (${o.clients})`,
      });
    if (o.trainSize < o.clients)
      ctx.addIssue({
        code: "custom",
        path: ["trainSize"],
        message: `${o.trainSize} samples cannot give each of ${o.clients} clients one`,
      });
    if (o.trainSize + o.rootSize > 60_000)
      ctx.addIssue({ code: "custom", path: ["rootSize"], message: "trainSize + rootSize must be ≤ 60,000" });
  });

export type FlSimSettings = z.output<typeof flSimOptionsSchema>;

export interface FlRoundProgress {
  rule: FlRunRule | "attack-free";
  /** Whether this run has the attackers (false for the attack-free runs). */
  attacked: boolean;
  round: number;
  rounds: number;
  /** Which run of how many this simulation makes. */
  run: number;
  runs: number;
}

export type FlSimOptions = z.input<typeof flSimOptionsSchema> & {
  /** Data already loaded with `loadFlData` (its sizes win over trainSize/testSize/rootSize). */
  data?: FlData;
  onRound?: (progress: FlRoundProgress) => void;
};

/** The federation's data: client training pool, server root set (FLTrust), and test set. */
export interface FlData {
  train: Examples;
  root: Examples;
  test: Examples;
  classes: readonly string[];
}

export interface FlagCounts {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  trueNegatives: number;
  /** Share of (attacker, round) pairs flagged; null without attackers. */
  recall: number | null;
  /** Share of flags that hit an attacker; null when nothing was flagged. */
  precision: number | null;
  /** Share of (honest client, round) pairs flagged. */
  falsePositiveRate: number | null;
}

export interface FlRunResult {
  rule: FlRunRule;
  /** Why the rule could not run (its own bound on n and F, from aggregate()); null when it ran. */
  skipped: string | null;
  accuracy: number | null;
  /** accuracy − the attack-free reference accuracy (FedAvg, every client honest). */
  deltaVsAttackFree: number | null;
  /** With `attackFreePerRule`: this rule's own accuracy when every client is honest. */
  ruleAttackFreeAccuracy: number | null;
  /** scaling-backdoor only: share of triggered non-target test images classified as the target. */
  backdoorSuccess: number | null;
  flags: FlagCounts | null;
  /** [round, accuracy] at every `evaluateEvery` rounds and at the end. */
  accuracyByRound: [number, number][];
  seconds: number;
}

export interface FlSimResult {
  settings: FlSimSettings;
  /** Indices of the Byzantine clients (empty for attack "none"). */
  byzantineClients: number[];
  clientSizes: number[];
  parameters: number;
  /** FedAvg with every client honest: the accuracy (and trigger response) an attack is measured against. */
  attackFree: { accuracy: number; backdoorSuccess: number | null; accuracyByRound: [number, number][] };
  runs: FlRunResult[];
  seconds: number;
}

/** Validate options as the library boundary: a mistake is one USAGE error naming the field. */
export function resolveFlSimOptions(options: unknown): FlSimSettings {
  const r = flSimOptionsSchema.safeParse(options);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new AntidoteError(
    "USAGE",
    `fl-sim: ${issue?.path.join(".") || "options"}: ${issue?.message ?? "invalid value"}.`,
  );
}

/**
 * Load the seeded subsamples of Fashion-MNIST a simulation uses: `trainSize` client samples
 * and `rootSize` server samples drawn without overlap from the training split, `testSize`
 * from the test split. Pixels are kept in [0, 1].
 */
export async function loadFlData(options: {
  trainSize: number;
  testSize: number;
  rootSize: number;
  seed: number | string;
}): Promise<FlData> {
  const rng = new Rng(`${options.seed}:data`);
  const trainPick = pick(rng, 60_000, options.trainSize + options.rootSize);
  const rootRows = new Set(trainPick.slice(options.trainSize));
  const trainRows = trainPick.slice(0, options.trainSize);
  const all = await readRows("fashion-mnist", new Set(trainPick));
  const test = await readRows("fashion-mnist:test", new Set(pick(rng, 10_000, options.testSize)));
  return {
    train: subset(all, trainRows),
    root: subset(all, [...rootRows]),
    test: subset(test, [...test.rows.keys()]),
    classes: FASHION_MNIST_CLASSES,
  };
}

export async function simulateFederation(options: FlSimOptions): Promise<FlSimResult> {
  const started = performance.now();
  const { data: given, onRound, ...rest } = options;
  const s = resolveFlSimOptions(rest);
  const data = given ?? (await loadFlData(s));
  const parts = partitionClients(data.train.y, {
    clients: s.clients,
    split: s.split,
    alpha: s.alpha,
    seed: s.seed,
  });
  const byzantine =
    s.attack === "none"
      ? []
      : new Rng(`${s.seed}:byzantine`).sample(
          Array.from({ length: s.clients }, (_, i) => i),
          s.byzantine,
        );
  const federation = new Federation(s, data, parts, byzantine);

  const rules: FlRunRule[] = [...s.rules, ...(s.foolsGold ? ["foolsgold" as const] : [])];
  const plan: { rule: FlRunRule | "attack-free"; attacked: boolean }[] = [
    { rule: "attack-free", attacked: false },
    ...rules.flatMap((rule) => [
      ...(s.attackFreePerRule ? [{ rule, attacked: false }] : []),
      { rule, attacked: true },
    ]),
  ];
  const runs: FlRunResult[] = [];
  let reference: RunOutcome | undefined;
  let ruleReference: RunOutcome | undefined;
  for (const [index, { rule, attacked }] of plan.entries()) {
    const report = (round: number): void =>
      onRound?.({ rule, attacked, round, rounds: s.rounds, run: index + 1, runs: plan.length });
    if (rule === "attack-free") {
      reference = federation.run("mean", false, report);
      continue;
    }
    if (!attacked) {
      ruleReference = federation.run(rule, false, report);
      continue;
    }
    const outcome = federation.run(rule, true, report);
    runs.push({
      rule,
      skipped: outcome.skipped,
      accuracy: outcome.accuracy,
      deltaVsAttackFree:
        outcome.accuracy === null || reference?.accuracy == null
          ? null
          : outcome.accuracy - reference.accuracy,
      ruleAttackFreeAccuracy: s.attackFreePerRule ? (ruleReference?.accuracy ?? null) : null,
      backdoorSuccess: outcome.backdoorSuccess,
      flags: outcome.skipped === null ? flagCounts(outcome.flagged, byzantine) : null,
      accuracyByRound: outcome.accuracyByRound,
      seconds: outcome.seconds,
    });
  }
  return {
    // Given data wins over the sizes in the options: report what was actually used.
    settings: { ...s, trainSize: data.train.count, testSize: data.test.count, rootSize: data.root.count },
    byzantineClients: byzantine,
    clientSizes: parts.map((p) => p.length),
    parameters: federation.parameters,
    attackFree: {
      accuracy: reference?.accuracy ?? 0,
      backdoorSuccess: reference?.backdoorSuccess ?? null,
      accuracyByRound: reference?.accuracyByRound ?? [],
    },
    runs,
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------------------

interface RunOutcome {
  skipped: string | null;
  accuracy: number | null;
  backdoorSuccess: number | null;
  accuracyByRound: [number, number][];
  /** Per round, per client: flagged by the rule. */
  flagged: boolean[][];
  seconds: number;
}

/** One seeded federation, run as many times as there are rules. */
class Federation {
  private readonly trainer: Trainer;
  private readonly training: LocalTraining;
  private readonly attackerData = new Map<number, Examples>();
  private readonly triggered: Examples | undefined;
  private readonly attackParams: AttackParameters;
  readonly parameters: number;

  constructor(
    private readonly s: FlSimSettings,
    private readonly data: FlData,
    private readonly parts: number[][],
    private readonly byzantine: number[],
  ) {
    const spec = modelSpec(s.model, {
      hidden: s.hidden,
      inputs: data.train.inputs,
      classes: data.classes.length,
    });
    this.parameters = spec.size;
    this.trainer = new Trainer(spec);
    this.training = {
      epochs: s.localEpochs,
      steps: s.localSteps,
      batchSize: s.batchSize,
      learningRate: s.learningRate,
    };
    this.attackParams = {
      flipScale: s.flipScale,
      ipmEpsilon: s.ipmEpsilon,
      alieZ: s.alieZ,
      minMaxDirection: s.minMaxDirection,
      boost: s.boost,
    };
    if (s.attack === "scaling-backdoor") {
      for (const c of byzantine)
        this.attackerData.set(
          c,
          backdoorTrainingSet(data.train, parts[c] ?? [], {
            target: s.backdoorTarget,
            fraction: s.poisonFraction,
            rng: new Rng(`${s.seed}:backdoor:${c}`),
          }),
        );
      const victims: number[] = [];
      for (let r = 0; r < data.test.count; r++) if (data.test.y[r] !== s.backdoorTarget) victims.push(r);
      this.triggered = withTrigger(data.test, victims);
    }
  }

  run(rule: FlRunRule, attacked: boolean, onRound: (round: number) => void): RunOutcome {
    const started = performance.now();
    const { s, data, parts } = this;
    const global = initParameters(this.trainer.spec, new Rng(`${s.seed}:init`));
    const isByzantine = new Set(attacked ? this.byzantine : []);
    const history = rule === "foolsgold" ? parts.map(() => new Float32Array(global.length)) : [];
    const flagged: boolean[][] = [];
    const accuracyByRound: [number, number][] = [];
    for (let round = 1; round <= s.rounds; round++) {
      const rng = (who: string): Rng => new Rng(`${s.seed}:round${round}:${who}`);
      const updates: Float32Array[] = new Array<Float32Array>(s.clients);
      const honest: Float32Array[] = [];
      for (let c = 0; c < s.clients; c++) {
        if (isByzantine.has(c)) continue;
        const u = this.trainer.trainLocal(
          global,
          data.train,
          parts[c] ?? [],
          this.training,
          rng(`client${c}`),
        );
        updates[c] = u;
        honest.push(u);
      }
      if (isByzantine.size > 0 && s.attack !== "none") {
        const attackers = [...isByzantine].sort((a, b) => a - b);
        const own = attackers.map((c) => this.ownUpdate(c, global, rng(`client${c}`)));
        craftByzantineUpdates(s.attack, { honest, own, clients: s.clients }, this.attackParams).forEach(
          (u, i) => (updates[attackers[i]!] = u),
        );
      }
      let step: Float32Array;
      let roundFlags: boolean[];
      if (rule === "foolsgold") {
        updates.forEach((u, c) => addInto(history[c]!, u));
        const fg = foolsGold(inMemoryUpdates(history), { threads: 1 });
        // FoolsGold's weights scale each client's step; normalized here so the server still
        // takes one averaged step, as FedAvg does.
        step = weightedMean(updates, fg.weights);
        roundFlags = fg.flagged;
      } else {
        try {
          const rootUpdate =
            rule === "fltrust"
              ? this.trainer.trainLocal(global, data.root, range(data.root.count), this.training, rng("root"))
              : undefined;
          const result = aggregate(inMemoryUpdates(updates), {
            rule,
            byzantine: s.assumedByzantine ?? s.byzantine,
            rootUpdate,
            // Local training dominates a round; one thread keeps runs reproducible and the
            // second core free.
            threads: 1,
          });
          step = result.aggregate;
          roundFlags = result.clients.map((c) => c.flagged);
        } catch (e) {
          // The rule's own bound on n and F (krum needs n > 2F + 2 …) skips the rule, not the table.
          if (!isAntidoteError(e) || e.code !== "USAGE") throw e;
          return {
            skipped: e.message,
            accuracy: null,
            backdoorSuccess: null,
            accuracyByRound: [],
            flagged: [],
            seconds: (performance.now() - started) / 1000,
          };
        }
      }
      addInto(global, step);
      flagged.push(roundFlags);
      if (round === s.rounds || (s.evaluateEvery > 0 && round % s.evaluateEvery === 0))
        accuracyByRound.push([round, this.trainer.accuracy(global, data.test)]);
      onRound(round);
    }
    return {
      skipped: null,
      accuracy: accuracyByRound.at(-1)?.[1] ?? null,
      backdoorSuccess: this.triggered === undefined ? null : this.targetRate(global, this.triggered),
      accuracyByRound,
      flagged,
      seconds: (performance.now() - started) / 1000,
    };
  }

  // The attacker's own update: honest training for sign-flip, backdoor training for model
  // replacement; the omniscient attacks craft from the honest updates and need none.
  private ownUpdate(client: number, global: Float32Array, rng: Rng): Float32Array {
    const { s, data, parts } = this;
    if (s.attack === "sign-flip")
      return this.trainer.trainLocal(global, data.train, parts[client] ?? [], this.training, rng);
    const poisoned = this.attackerData.get(client);
    if (s.attack === "scaling-backdoor" && poisoned !== undefined)
      return this.trainer.trainLocal(global, poisoned, range(poisoned.count), this.training, rng);
    return new Float32Array(0);
  }

  private targetRate(params: Float32Array, triggered: Examples): number {
    let hits = 0;
    for (let r = 0; r < triggered.count; r++)
      if (this.trainer.predict(params, triggered, r) === this.s.backdoorTarget) hits++;
    return triggered.count === 0 ? 0 : hits / triggered.count;
  }
}

/** Flags over every round, against the true Byzantine set. */
export function flagCounts(
  flagged: readonly (readonly boolean[])[],
  byzantine: readonly number[],
): FlagCounts {
  const bad = new Set(byzantine);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (const round of flagged)
    round.forEach((f, c) => {
      if (bad.has(c)) {
        if (f) tp++;
        else fn++;
      } else if (f) fp++;
      else tn++;
    });
  return {
    truePositives: tp,
    falsePositives: fp,
    falseNegatives: fn,
    trueNegatives: tn,
    recall: tp + fn === 0 ? null : tp / (tp + fn),
    precision: tp + fp === 0 ? null : tp / (tp + fp),
    falsePositiveRate: fp + tn === 0 ? null : fp / (fp + tn),
  };
}

function weightedMean(updates: readonly Float32Array[], weights: readonly number[]): Float32Array {
  const out = new Float32Array(updates[0]?.length ?? 0);
  const total = weights.reduce((a, w) => a + w, 0);
  if (!(total > 0)) return out;
  updates.forEach((u, c) => {
    const w = (weights[c] ?? 0) / total;
    if (w !== 0) for (let j = 0; j < out.length; j++) out[j] = out[j]! + w * u[j]!;
  });
  return out;
}

function addInto(target: Float32Array, delta: Float32Array): void {
  for (let j = 0; j < target.length; j++) target[j] = target[j]! + delta[j]!;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

// k distinct indices of 0..n−1, seeded (a partial Fisher–Yates: O(n) memory, O(k) swaps).
function pick(rng: Rng, n: number, k: number): number[] {
  const a = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return Array.from(a.subarray(0, k));
}

interface RowStore {
  inputs: number;
  /** Dataset row index → (pixels, class index). */
  rows: Map<number, { x: Float32Array; y: number }>;
}

// Stream a split once and keep only the wanted rows (the readers stream; memory stays at the subsample).
async function readRows(spec: string, wanted: Set<number>): Promise<RowStore> {
  const dataset = await openDataset(spec);
  const classes = dataset.info.classes ?? FASHION_MNIST_CLASSES;
  const rows = new Map<number, { x: Float32Array; y: number }>();
  let inputs = 0;
  let i = 0;
  for await (const sample of dataset.samples()) {
    if (wanted.has(i)) {
      const image = sample.image;
      const y = classes.indexOf(sample.label ?? "");
      if (image === undefined || y < 0)
        throw new AntidoteError(
          "INPUT_FORMAT",
          `${spec}: sample ${sample.id} has no image or an unknown label.`,
        );
      inputs = image.data.length;
      rows.set(i, { x: image.data, y });
    }
    i++;
  }
  return { inputs, rows };
}

function subset(store: RowStore, order: readonly number[]): Examples {
  const x = new Float32Array(order.length * store.inputs);
  const y = new Uint8Array(order.length);
  order.forEach((r, i) => {
    const row = store.rows.get(r);
    if (row === undefined) throw new AntidoteError("INTERNAL", `row ${r} was not read`);
    x.set(row.x, i * store.inputs);
    y[i] = row.y;
  });
  return { count: order.length, inputs: store.inputs, x, y };
}
