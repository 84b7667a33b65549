// Attestation check: does the agent run the model it says it runs? Each batch's statement names
// the model's digest, and the intake accepts only registered models — but the statement is the
// agent's word. For records that carry their input, the server can run the attested model itself
// and compare: a model is a deterministic function, so the reported probabilities must be the
// attested model's on that input, up to the arithmetic differences of two runtimes.
//
// Test: per batch, up to `sample` records with an input — chosen by a keyed hash of their ids, the
// key random and kept in the monitor's state, so an agent cannot tell which records get checked —
// are re-run through the attested model's predictor; a record mismatches when some class's
// probability differs by more than `tolerance`. The batch alerts when at least
// max(minMismatches, minShare · checked) records mismatch — on the agent (subject "source") and the
// batch, finding "attestation-mismatch".
//
// False-alarm control: not statistical. The same model on the same input gives the same
// probabilities to ~1e-6 across runtimes (measured: TF.js vs ONNX Runtime on a Fashion-MNIST CNN,
// largest difference 1.1e-6), so with tolerance 0.01 an honest agent mismatches only when the
// input it sends is not the input its model saw — e.g. it predicted on float pixels and sent them
// rounded to 8 bits; an agent must send what its model read. Requiring several mismatched records
// (default 2, and a quarter of those checked) keeps a single corrupted record from alarming.
import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { BatchPredictor } from "../../audit/strip.js";
import { parseOptions } from "../../features/options.js";
import { murmur3_32 } from "../../math/hash.js";
import type { DecodedBatch, DecodedRecord } from "../schema.js";
import { imageToChw, parseState, round, type AsyncMonitor, type MonitorAlert } from "./types.js";

export const ATTESTATION_MONITOR = "attestation";

export const attestationOptionsSchema = z
  .object({
    /** Records re-run per batch. */
    sample: z.number().int().min(1).default(16),
    /** Largest |reported − recomputed| probability of a matching record. */
    tolerance: z.number().gt(0).lt(1).default(0.01),
    /** Mismatched records a batch needs to alert, at least. */
    minMismatches: z.number().int().min(1).default(2),
    /** … and at least this share of the checked records. */
    minShare: z.number().gt(0).max(1).default(0.25),
    /** Key of the record choice; default a random one, kept in the state (an agent must not know it). */
    samplingKey: z.number().int().min(0).max(0xffffffff).optional(),
  })
  .strict();
export type AttestationOptions = z.input<typeof attestationOptionsSchema>;

/** A model's input for a record (null: this record cannot be re-run); default: its image (C×H×W) or its features. */
export type InputEncoder = (record: DecodedRecord) => Float32Array | null;

/** Per attested model digest: its predictor and, optionally, how to lay a record's input out for it. */
export type AttestationRuntime = Record<string, { predict: BatchPredictor; encode?: InputEncoder }>;

const attestationStateSchema = z.object({
  monitor: z.literal(ATTESTATION_MONITOR),
  samplingKey: z.number().int().min(0).max(0xffffffff),
  /** Per agent: records checked, mismatched, batches alerted. */
  agents: z.record(z.string(), z.object({ checked: z.number(), mismatched: z.number(), alerts: z.number() })),
});
export type AttestationState = z.output<typeof attestationStateSchema>;

export function defaultEncoder(r: DecodedRecord): Float32Array | null {
  if (r.image !== undefined) return imageToChw(r.image);
  if (r.features !== undefined) return r.features;
  return null;
}

export function createAttestationCheck(
  runtime: AttestationRuntime,
  options: AttestationOptions = {},
  state?: unknown,
): AsyncMonitor<AttestationState> {
  const o = parseOptions(attestationOptionsSchema, options, "attestation check");
  const saved =
    state === undefined ? undefined : parseState(attestationStateSchema, state, ATTESTATION_MONITOR);
  const agents: AttestationState["agents"] = structuredClone(saved?.agents ?? {});
  const samplingKey = o.samplingKey ?? saved?.samplingKey ?? randomBytes(4).readUInt32LE(0);

  return {
    name: ATTESTATION_MONITOR,
    async observe(batch: DecodedBatch): Promise<MonitorAlert[]> {
      const model = runtime[batch.model];
      if (model === undefined) return [];
      const encode = model.encode ?? defaultEncoder;
      const K = batch.classes.length;
      const candidates: { r: DecodedRecord; x: Float32Array; key: number }[] = [];
      for (const r of batch.records) {
        const x = encode(r);
        if (x !== null) candidates.push({ r, x, key: murmur3_32(`${batch.batchId}/${r.id}`, samplingKey) });
      }
      if (candidates.length === 0) return [];
      const chosen = candidates.sort((a, b) => a.key - b.key).slice(0, o.sample);
      const size = (chosen[0] as (typeof chosen)[number]).x.length;
      const usable = chosen.filter((c) => c.x.length === size);
      const x = new Float32Array(usable.length * size);
      usable.forEach((c, i) => x.set(c.x, i * size));
      const probs = await model.predict(x, usable.length);
      const mismatched: { id: string; difference: number }[] = [];
      let largest = 0;
      usable.forEach((c, i) => {
        let d = probs.length === usable.length * K ? 0 : Infinity;
        for (let k = 0; k < K && Number.isFinite(d); k++)
          d = Math.max(d, Math.abs((probs[i * K + k] as number) - (c.r.probs[k] as number)));
        if (Number.isFinite(d)) largest = Math.max(largest, d);
        if (!(d <= o.tolerance))
          mismatched.push({ id: c.r.id, difference: Number.isFinite(d) ? round(d) : -1 });
      });
      const totals = (agents[batch.agent] ??= { checked: 0, mismatched: 0, alerts: 0 });
      totals.checked += usable.length;
      totals.mismatched += mismatched.length;
      const needed = Math.max(o.minMismatches, Math.ceil(o.minShare * usable.length));
      if (mismatched.length < needed) return [];
      totals.alerts++;
      const evidence = {
        model: batch.model,
        agent: batch.agent,
        checked: usable.length,
        mismatched: mismatched.length,
        largestDifference: round(largest),
        tolerance: o.tolerance,
        records: mismatched.map((m) => m.id),
        classesDiffer: probs.length !== usable.length * K,
      };
      const score = round(mismatched.length / usable.length);
      return [
        {
          monitor: ATTESTATION_MONITOR,
          kind: "attestation-mismatch",
          subjectType: "source",
          subjectId: batch.agent,
          score,
          batchId: batch.batchId,
          evidence: { ...evidence, agentTotals: { ...totals } },
        },
        {
          monitor: ATTESTATION_MONITOR,
          kind: "attestation-mismatch",
          subjectType: "telemetry-batch",
          subjectId: batch.batchId,
          score,
          batchId: batch.batchId,
          evidence,
        },
      ];
    },
    state(): AttestationState {
      return { monitor: ATTESTATION_MONITOR, samplingKey, agents: structuredClone(agents) };
    },
  };
}
