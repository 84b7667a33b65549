// What the F Byzantine clients of a simulated federation send. Each attack is the one in its
// paper; the attackers are omniscient where the paper lets them be (they see every honest
// update of the round), which is the usual worst case robust aggregation is judged against.
//
//   sign-flip         −k × the attacker's own honest update
//   scaling-backdoor  model replacement (Bagdasaryan et al., 2020): train on data carrying a
//                     3×3 patch trigger relabelled to the target class, then boost the update
//                     so the F boosted updates together replace the global model under FedAvg
//   alie              A Little Is Enough (Baruch, Baruch & Goldberg, 2019): μ − z·σ per coordinate
//   ipm               Inner Product Manipulation (Xie, Koyejo & Gupta, 2020): −ε × mean honest update
//   min-max           Shejwalkar & Houmansadr (2021): μ + γ·p with the largest γ whose maximum
//                     distance to any honest update stays within the largest honest pairwise distance
import { stampPatch, type PatchOptions } from "../../attack/patterns.js";
import { AntidoteError } from "../../errors.js";
import type { Rng } from "../../math/rng.js";
import type { Examples } from "./model.js";
import { normalQuantile } from "../../math/linalg.js";

export type FlAttack = "none" | "sign-flip" | "scaling-backdoor" | "alie" | "ipm" | "min-max";

export const FL_ATTACKS: readonly FlAttack[] = [
  "none",
  "sign-flip",
  "scaling-backdoor",
  "alie",
  "ipm",
  "min-max",
];

export type MinMaxDirection = "unit-mean" | "std";

export interface AttackParameters {
  /** sign-flip: k in −k × own update. */
  flipScale: number;
  /** ipm: ε in −ε × mean honest update. */
  ipmEpsilon: number;
  /** alie: z; default from n and F (see `alieZ`). */
  alieZ?: number;
  /** min-max: the perturbation direction p (−unit mean, or −coordinate-wise std). */
  minMaxDirection: MinMaxDirection;
  /** scaling-backdoor: boost factor γ; default n / F (see `defaultBoost`). */
  boost?: number;
}

/** The trigger every backdoor in fl-sim uses: the BadNets default of `antidote attack patch`. */
export const FL_TRIGGER: PatchOptions = {
  size: 3,
  position: "bottom-right",
  margin: 1,
  value: 1,
  pattern: "solid",
};

/**
 * The F malicious updates of one round. `own` holds each attacker's own update (its honest
 * update for sign-flip, its backdoor-trained update for scaling-backdoor); `honest` holds
 * the honest clients' updates, which ALIE, IPM and min-max read.
 */
export function craftByzantineUpdates(
  attack: Exclude<FlAttack, "none">,
  context: { honest: readonly Float32Array[]; own: readonly Float32Array[]; clients: number },
  params: AttackParameters,
): Float32Array[] {
  const { honest, own, clients } = context;
  const f = own.length;
  switch (attack) {
    case "sign-flip":
      return own.map((u) => scaled(u, -params.flipScale));
    case "scaling-backdoor": {
      const boost = params.boost ?? defaultBoost(clients, f);
      return own.map((u) => scaled(u, boost));
    }
    case "alie": {
      const v = alieUpdate(honest, params.alieZ ?? alieZ(clients, f));
      return own.map(() => new Float32Array(v));
    }
    case "ipm": {
      const v = scaled(meanOf(honest), -params.ipmEpsilon);
      return own.map(() => new Float32Array(v));
    }
    case "min-max": {
      const v = minMaxUpdate(honest, params.minMaxDirection).update;
      return own.map(() => new Float32Array(v));
    }
  }
}

/**
 * Model replacement's boost: with server learning rate η = 1 and FedAvg over n clients,
 * G' = G + (1/n)·Σ Δ, so F attackers each sending (n / F)·(X − G) move G to X plus the
 * honest clients' small contribution (Bagdasaryan et al.'s γ = n/η, shared by F colluders).
 */
export function defaultBoost(clients: number, byzantine: number): number {
  return clients / Math.max(1, byzantine);
}

/**
 * ALIE's z_max (Baruch et al., 2019, Alg. 3): s = ⌊n/2 + 1⌋ − F supporters are needed for a
 * majority, and z is the largest deviation that keeps at least s honest updates farther from
 * the mean than the malicious one: z = Φ⁻¹((n − s) / n).
 */
export function alieZ(clients: number, byzantine: number): number {
  const s = Math.floor(clients / 2 + 1) - byzantine;
  const q = (clients - s) / clients;
  if (q <= 0 || q >= 1)
    throw new AntidoteError(
      "USAGE",
      `alie: no z for n=${clients}, F=${byzantine}: (n − s)/n = ${q.toFixed(3)} is outside (0, 1).`,
    );
  return normalQuantile(q);
}

/** μ − z·σ per coordinate, over the honest updates. */
export function alieUpdate(honest: readonly Float32Array[], z: number): Float32Array {
  const { mean, std } = moments(honest);
  const out = new Float32Array(mean.length);
  for (let j = 0; j < out.length; j++) out[j] = mean[j]! - z * std[j]!;
  return out;
}

/**
 * Min-max (Shejwalkar & Houmansadr, 2021, AGR-agnostic): m = μ + γ·p with the largest γ such
 * that max_i ‖m − g_i‖ ≤ max_{i,j} ‖g_i − g_j‖. Their code searches γ by halving steps; here
 * ‖μ + γp − g_i‖² is a quadratic in γ, so each honest update gives its largest admissible γ
 * in closed form and γ is the smallest of those.
 */
export function minMaxUpdate(
  honest: readonly Float32Array[],
  direction: MinMaxDirection,
): { update: Float32Array; gamma: number } {
  const { mean, std } = moments(honest);
  const d = mean.length;
  const p = new Float32Array(d);
  if (direction === "std") for (let j = 0; j < d; j++) p[j] = -std[j]!;
  else {
    const norm = Math.sqrt(dot(mean, mean));
    if (norm > 0) for (let j = 0; j < d; j++) p[j] = -mean[j]! / norm;
  }
  let thresholdSquared = 0;
  for (let i = 0; i < honest.length; i++)
    for (let k = i + 1; k < honest.length; k++)
      thresholdSquared = Math.max(thresholdSquared, squaredDistance(honest[i]!, honest[k]!));
  const a = dot(p, p);
  let gamma = a > 0 ? Infinity : 0;
  for (const g of honest) {
    let b = 0;
    let c = 0;
    for (let j = 0; j < d; j++) {
      const diff = mean[j]! - g[j]!;
      b += diff * p[j]!;
      c += diff * diff;
    }
    // ‖μ − g + γp‖² = aγ² + 2bγ + c ≤ T²; the mean lies in the honest hull, so γ = 0 is admissible.
    if (a > 0) gamma = Math.min(gamma, (-b + Math.sqrt(Math.max(0, b * b - a * (c - thresholdSquared)))) / a);
  }
  if (!Number.isFinite(gamma)) gamma = 0;
  const update = new Float32Array(d);
  for (let j = 0; j < d; j++) update[j] = mean[j]! + gamma * p[j]!;
  return { update, gamma };
}

/**
 * A backdoor attacker's training set: its own samples plus triggered copies of a share
 * `fraction` of its non-target samples, relabelled to `target` (clean and triggered data
 * together keep the main task accurate while the trigger is learned).
 */
export function backdoorTrainingSet(
  data: Examples,
  rows: readonly number[],
  options: { target: number; fraction: number; rng: Rng },
): Examples {
  const victims = options.rng
    .shuffle(rows.filter((r) => data.y[r] !== options.target))
    .slice(0, Math.round(options.fraction * rows.length));
  const all = [...rows, ...victims];
  const x = new Float32Array(all.length * data.inputs);
  const y = new Uint8Array(all.length);
  rows.forEach((r, i) => {
    x.set(data.x.subarray(r * data.inputs, (r + 1) * data.inputs), i * data.inputs);
    y[i] = data.y[r]!;
  });
  const stamped = withTrigger(data, victims);
  x.set(stamped.x, rows.length * data.inputs);
  y.fill(options.target, rows.length);
  return { count: all.length, inputs: data.inputs, x, y };
}

/** The rows `rows` of `data` with the trigger stamped on, labels kept (for measuring attack success). */
export function withTrigger(data: Examples, rows: readonly number[]): Examples {
  const side = Math.round(Math.sqrt(data.inputs));
  if (side * side !== data.inputs)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `a trigger needs square images; examples have ${data.inputs} inputs.`,
    );
  const x = new Float32Array(rows.length * data.inputs);
  const y = new Uint8Array(rows.length);
  rows.forEach((r, i) => {
    const image = {
      height: side,
      width: side,
      channels: 1,
      data: data.x.subarray(r * data.inputs, (r + 1) * data.inputs),
    };
    x.set(stampPatch(image, FL_TRIGGER, `row ${r}`).image.data, i * data.inputs);
    y[i] = data.y[r]!;
  });
  return { count: rows.length, inputs: data.inputs, x, y };
}

/** Coordinate-wise mean and (population) standard deviation of the updates. */
export function moments(updates: readonly Float32Array[]): { mean: Float32Array; std: Float32Array } {
  const n = updates.length;
  if (n === 0) throw new AntidoteError("USAGE", "an omniscient attack needs at least one honest update.");
  const d = updates[0]!.length;
  const mean = meanOf(updates);
  const std = new Float32Array(d);
  for (const u of updates)
    for (let j = 0; j < d; j++) {
      const diff = u[j]! - mean[j]!;
      std[j] = std[j]! + diff * diff;
    }
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]! / n);
  return { mean, std };
}

export function meanOf(updates: readonly Float32Array[]): Float32Array {
  const d = updates[0]?.length ?? 0;
  const mean = new Float32Array(d);
  for (const u of updates) for (let j = 0; j < d; j++) mean[j] = mean[j]! + u[j]!;
  for (let j = 0; j < d; j++) mean[j] = mean[j]! / Math.max(1, updates.length);
  return mean;
}

function scaled(u: Float32Array, k: number): Float32Array {
  const out = new Float32Array(u.length);
  for (let j = 0; j < u.length; j++) out[j] = k * u[j]!;
  return out;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += a[j]! * b[j]!;
  return s;
}

function squaredDistance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) {
    const diff = a[j]! - b[j]!;
    s += diff * diff;
  }
  return s;
}
