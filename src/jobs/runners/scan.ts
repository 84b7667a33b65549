// The `scan` job: scan a dataset version of the ledger for poisoning, as `antidote scan` does,
// and record its findings with the job's outcome. The version is materialized from the sample
// store into the job's directory; the scan runs without the ledger option, because the engine
// appends the findings together with `job.finished` in one batch — recorded once, however
// often the job is run. Only options that need no local files are offered (no --features or
// --pred-probs: a client cannot name files on the server); the user's model comes as the
// job's uploaded input `model.onnx`, as an audit's does.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { openDataset } from "../../data/open.js";
import type { LedgerEventInput } from "../../ledger/types.js";
import { renderReportHtml } from "../../scan/report-html.js";
import { buildReportJson } from "../../scan/report-json.js";
import { scanDataset, scanFindings, scanOptionsSchema } from "../../scan/scan.js";
import type { JobRunner } from "../types.js";
import { textArtifact, versionData } from "./dataset.js";

/** The uploaded model a scan runs, when the job has one (the same input name as an audit's). */
export const SCAN_MODEL_INPUT = "model.onnx";

export const scanParameters = scanOptionsSchema
  .pick({ detectors: true, seed: true, imageProxy: true, previews: true, inputShape: true, output: true })
  .extend({ version: z.string().min(1) })
  .strict();

export const scanRunner: JobRunner<typeof scanParameters> = {
  kind: "scan",
  description:
    "Scan a dataset version for poisoning; findings are recorded in the ledger, report.json/html kept",
  parameters: scanParameters,
  async run(p, ctx) {
    const data = await versionData(ctx, p.version);
    const dataset = await openDataset(data, { format: "parquet" });
    const total = dataset.info.count ?? 0;
    let stage = "read";
    const model = join(ctx.workDir, "input", SCAN_MODEL_INPUT);
    const report = await scanDataset(dataset, {
      ...(existsSync(model) ? { model } : {}),
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
    const events: LedgerEventInput[] = findings.map((payload) => ({ kind: "finding.recorded", payload }));
    const detectors: Record<string, number> = {};
    for (const d of json.detectors) if (d.status === "ran") detectors[d.name] = d.flagged ?? 0;
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
      ],
      events,
    };
  },
};
