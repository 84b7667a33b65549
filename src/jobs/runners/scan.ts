// The `scan` job: scan a dataset version of the ledger for poisoning, as `antidote scan` does,
// and record its findings with the job's outcome. The version is materialized from the sample
// store into the job's directory; the scan runs without the ledger option, because the engine
// appends the findings together with `job.finished` in one batch — recorded once, however
// often the job is run. Only options that need no local files are offered (no --features or
// --pred-probs: a client cannot name files on the server); the user's model comes as the
// job's uploaded input `model.onnx`, as an audit's does. Its files: report.json, report.html,
// and previews.json (the flagged samples' thumbnails or text excerpts, which report.json omits).
//
// `shards: K` splits the model's inference (the part of a scan with a model that costs compute
// and input memory) into K parts, one per contiguous range of the version (scan/shard.ts). The
// BullMQ engine runs the parts as child jobs on any free workers and this job once they have
// ended; the job merges their outputs (scan/shard-merge.ts) and runs the detectors on the whole,
// as a single-process scan does. A part that is missing (a child that failed, Redis lost the
// flow, the in-process engine) is computed here: the result is the same, only slower.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { openDataset } from "../../data/open.js";
import { AntidoteError } from "../../errors.js";
import type { LedgerEventInput } from "../../ledger/types.js";
import { previewsJson } from "../../scan/previews.js";
import { renderReportHtml } from "../../scan/report-html.js";
import { buildReportJson } from "../../scan/report-json.js";
import { scanDataset, scanFindings, scanOptionsSchema } from "../../scan/scan.js";
import { decodeShard, encodeShard } from "../../scan/shard-file.js";
import { mergeShards } from "../../scan/shard-merge.js";
import { scanShard, type ShardOutputs } from "../../scan/shard.js";
import type { JobContext, JobRunner } from "../types.js";
import { textArtifact, versionData } from "./dataset.js";
import { scanCoverageEvent } from "../../policy/enforce.js";

/** The uploaded model a scan runs, when the job has one (the same input name as an audit's). */
export const SCAN_MODEL_INPUT = "model.onnx";

export const scanParameters = scanOptionsSchema
  .pick({ detectors: true, seed: true, imageProxy: true, previews: true, inputShape: true, output: true })
  .extend({
    version: z.string().min(1),
    /** Split the model's inference over this many workers (needs the model input). */
    shards: z.number().int().min(2).max(64).optional(),
  })
  .strict();
type ScanParameters = z.output<typeof scanParameters>;

/** "shard-0-of-2": a part's name says which range of which split it holds. */
function shardPart(index: number, count: number): string {
  return `shard-${index}-of-${count}`;
}

/** Run the model over one shard of the version, as bytes to keep with the job. */
async function computeShard(p: ScanParameters, index: number, count: number, ctx: JobContext, data?: string) {
  const dataset = await openDataset(data ?? (await versionData(ctx, p.version)), { format: "parquet" });
  const outputs = await scanShard(dataset, {
    model: join(ctx.workDir, "input", SCAN_MODEL_INPUT),
    shard: { index, count },
    ...(ctx.threads !== undefined ? { threads: ctx.threads } : {}),
    ...(p.inputShape !== undefined ? { inputShape: p.inputShape } : {}),
    ...(p.output !== undefined ? { output: p.output } : {}),
    onProgress: (done, total) => ctx.progress(`shard ${index + 1} of ${count}`, done, total),
  });
  return outputs;
}

/** Every shard's outputs: kept by the parts that ran ahead, else computed here (and kept). */
async function allShards(p: ScanParameters, count: number, ctx: JobContext, data: string) {
  const shards: ShardOutputs[] = [];
  for (let index = 0; index < count; index++) {
    const name = shardPart(index, count);
    const kept = await ctx.parts.get(name);
    if (kept !== undefined) {
      shards.push(await decodeShard(kept, name));
      continue;
    }
    const computed = await computeShard(p, index, count, ctx, data);
    // Kept, so that a rerun of this job (its worker died) does not compute it again.
    await ctx.parts.put(name, encodeShard(computed));
    shards.push(computed);
  }
  return mergeShards(shards);
}

export const scanRunner: JobRunner<typeof scanParameters> = {
  kind: "scan",
  description:
    "Scan a dataset version for poisoning; findings are recorded in the ledger, report.json/html and previews.json kept",
  parameters: scanParameters,
  requiredInputs: (p) => (p.shards !== undefined ? [SCAN_MODEL_INPUT] : []),
  parts: (p) =>
    p.shards === undefined ? [] : Array.from({ length: p.shards }, (_, k) => shardPart(k, p.shards ?? 1)),
  async runPart(p, part, ctx) {
    const m = /^shard-(\d+)-of-(\d+)$/.exec(part);
    if (m === null || Number(m[2]) !== p.shards)
      throw new AntidoteError("INTERNAL", `scan job: "${part.slice(0, 80)}" is not one of its shards.`);
    return encodeShard(await computeShard(p, Number(m[1]), Number(m[2]), ctx));
  },
  async run(p, ctx) {
    const data = await versionData(ctx, p.version);
    const dataset = await openDataset(data, { format: "parquet" });
    const total = dataset.info.count ?? 0;
    let stage = "read";
    const model = join(ctx.workDir, "input", SCAN_MODEL_INPUT);
    const merged = p.shards === undefined ? undefined : await allShards(p, p.shards, ctx, data);
    const report = await scanDataset(dataset, {
      ...(merged !== undefined ? { modelOutputs: merged } : existsSync(model) ? { model } : {}),
      ...(p.inputShape !== undefined ? { inputShape: p.inputShape } : {}),
      ...(p.output !== undefined ? { output: p.output } : {}),
      ...(p.detectors !== undefined ? { detectors: p.detectors } : {}),
      seed: p.seed,
      imageProxy: p.imageProxy,
      previews: p.previews,
      onStage: (name) => {
        stage = name;
        ctx.progress(name, 0, 0);
      },
      onSample: (n) => ctx.progress(stage, n, total),
      onProgress: (done, all) => ctx.progress(stage, done, all),
    });
    ctx.progress("report", 0, 0);
    const findings = scanFindings(report);
    // The report as it will be once the engine records the findings: its next steps then name
    // the version (quarantine, export) instead of asking for a ledger; no local path shows.
    report.dataset = { ...report.dataset, path: p.version };
    if (report.representation.model !== undefined)
      report.representation.model = { ...report.representation.model, path: SCAN_MODEL_INPUT };
    report.ledger = {
      location: ctx.ledger.location,
      findings: findings.length,
      events: null,
      datasetVersions: [p.version],
    };
    const json = buildReportJson(report, { dataset: p.version, outDir: "." });
    const html = renderReportHtml(json, { previews: report.previews });
    const detectors: Record<string, number> = {};
    for (const d of json.detectors) if (d.status === "ran") detectors[d.name] = d.flagged ?? 0;
    // Recorded with the findings: which detectors scanned the version (a policy's requiredScans).
    const events: LedgerEventInput[] = [
      ...findings.map((payload): LedgerEventInput => ({ kind: "finding.recorded", payload })),
      scanCoverageEvent(p.version, json.dataset.merkleRoot, Object.keys(detectors)),
    ];
    return {
      result: {
        version: p.version,
        samples: json.dataset.samples,
        flagged: json.ensemble.flagged,
        findings: findings.length,
        detectors,
        skipped: json.detectors.filter((d) => d.status === "skipped").map((d) => d.name),
        merkleRoot: json.dataset.merkleRoot,
      },
      artifacts: [
        textArtifact("report.json", "application/json", JSON.stringify(json, null, 2) + "\n"),
        textArtifact("report.html", "text/html; charset=utf-8", html),
        // The flagged samples' content for clients (the dashboard), which report.json omits.
        textArtifact(
          "previews.json",
          "application/json",
          JSON.stringify(previewsJson(json.flagged, report.previews)) + "\n",
        ),
      ],
      events,
    };
  },
};
