// The `audit` job: look for a backdoor in an uploaded ONNX classifier, as `antidote audit`
// does, with clean images from a dataset version of the ledger, and record the one finding
// about the model with the job's outcome. The model is the job's input "model.onnx"; known-
// clean reference models are further inputs, named in `references`. Neural Cleanse's cost is
// per label and step, so `labels` and `steps` bound a job's time.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { auditFinding, auditModel } from "../../audit/audit.js";
import { renderAuditHtml } from "../../audit/report-html.js";
import { buildAuditReportJson } from "../../audit/report-json.js";
import { AntidoteError } from "../../errors.js";
import type { JobRunner } from "../types.js";
import { textArtifact, versionData } from "./dataset.js";

/** The input holding the model to audit. */
export const AUDIT_MODEL_INPUT = "model.onnx";

export const auditParameters = z
  .object({
    /** Clean images like the model's inputs: a dataset version (labels optional). */
    version: z.string().min(1),
    /** Inputs holding known-clean models of the same task and architecture. */
    references: z.array(z.string().min(1)).default([]),
    samples: z.number().int().min(20).max(100_000).default(600),
    seed: z.number().int().default(0),
    /** Most optimisation steps per label (default 500). */
    steps: z.number().int().min(20).max(100_000).optional(),
    /** Invert only these labels (class indices); default all. */
    labels: z.array(z.number().int().min(0)).min(1).optional(),
    ratio: z.number().gt(1).optional(),
    minAsr: z.number().min(0).max(1).optional(),
    /** STRIP's accepted false-rejection rate; `strip: false` skips its calibration. */
    frr: z.number().gt(0).lt(1).default(0.01),
    strip: z.boolean().default(true),
    tolerance: z.number().min(0).max(1).optional(),
    inputShape: z.array(z.number().int().min(1)).min(1).optional(),
    output: z.string().min(1).optional(),
  })
  .strict();

export const auditRunner: JobRunner<typeof auditParameters> = {
  kind: "audit",
  description:
    "Audit an uploaded ONNX classifier (input model.onnx) for a backdoor, with images from a dataset version",
  parameters: auditParameters,
  requiredInputs: [AUDIT_MODEL_INPUT],
  async run(p, ctx) {
    const input = (name: string) => join(ctx.workDir, "input", name);
    for (const name of p.references)
      if (name === AUDIT_MODEL_INPUT || !existsSync(input(name)))
        throw new AntidoteError("USAGE", `audit job: reference "${name}" is not one of the job's inputs.`);
    const data = await versionData(ctx, p.version);
    let stage = "open";
    const report = await auditModel(input(AUDIT_MODEL_INPUT), {
      data,
      dataReadOptions: { format: "parquet" },
      references: p.references.map(input),
      samples: p.samples,
      seed: p.seed,
      ...(p.steps !== undefined ? { steps: p.steps } : {}),
      ...(p.labels !== undefined ? { neuralCleanse: { labels: p.labels } } : {}),
      ...(p.ratio !== undefined ? { ratio: p.ratio } : {}),
      ...(p.minAsr !== undefined ? { minAsr: p.minAsr } : {}),
      ...(p.tolerance !== undefined ? { translationTolerance: p.tolerance } : {}),
      ...(p.inputShape !== undefined ? { inputShape: p.inputShape } : {}),
      ...(p.output !== undefined ? { output: p.output } : {}),
      strip: p.strip ? { frr: p.frr } : false,
      onStage: (name) => {
        stage = name;
        ctx.progress(name, 0, 0);
      },
      onInversion: (q) => ctx.progress(stage, q.labelsDone, q.labels),
    });
    // Files are named as uploaded, never by their place in the job's directory.
    report.model = { ...report.model, path: AUDIT_MODEL_INPUT };
    report.references = report.references.map((r, i) => ({ ...r, path: p.references[i] ?? r.path }));
    report.data = { ...report.data, name: p.version };
    const finding = auditFinding(report);
    report.ledger = { location: ctx.ledger.location, findings: 1, event: null };
    const json = buildAuditReportJson(report, { model: AUDIT_MODEL_INPUT, data: p.version, outDir: "." });
    const v = report.verdict;
    return {
      result: {
        version: p.version,
        model: report.model.digest,
        references: report.references.map((r) => r.digest),
        images: report.data.used,
        backdoor: v.backdoor,
        method: v.method,
        suspected: v.suspected.map((l) => ({ label: l.label, className: l.className })),
        finding: finding.kind,
      },
      artifacts: [
        textArtifact("report.json", "application/json", JSON.stringify(json, null, 2) + "\n"),
        textArtifact("report.html", "text/html; charset=utf-8", renderAuditHtml(json)),
      ],
      events: [{ kind: "finding.recorded", payload: finding }],
    };
  },
};
