// `antidote audit`: look for a backdoor in an ONNX classifier — reverse-engineer the smallest
// trigger for each label (Neural Cleanse), compare with known-clean reference models, calibrate
// STRIP input screening — write report.json and a self-contained report.html, and (with a
// ledger) record one finding for the model. A thin shell over `auditModel`.
//
// Like `scan`, the command exits 0 when the audit ran, whatever it found: the verdict is data
// (`verdict.backdoor` in --json and report.json), and exit codes are kept for failures.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { z } from "zod";
import { writeOutputFile } from "../../data/atomic-output.js";
import { auditModel, type AuditReport } from "../../audit/audit.js";
import { renderAuditHtml } from "../../audit/report-html.js";
import { buildAuditReportJson, type AuditReportJson } from "../../audit/report-json.js";
import { AntidoteError } from "../../errors.js";
import { openLedger } from "../../ledger/index.js";
import type { Ledger } from "../../ledger/types.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const auditFlags = z.object({
  data: z.string().min(1),
  out: z.string().min(1),
  reference: z.array(z.string().min(1)).default([]),
  inputShape: z
    .string()
    .regex(/^\d+(,\d+)*$/, "give the dimensions without the batch, comma-separated, e.g. 1,28,28")
    .transform((s) => s.split(",").map(Number))
    .refine((dims) => dims.every((d) => d > 0), "every dimension must be at least 1")
    .optional(),
  output: z.string().min(1).optional(),
  inputs: z.string().min(1).optional(),
  ledger: z.string().min(1).optional(),
  ledgerKey: z.string().min(1).optional(),
  steps: z.coerce
    .number()
    .int("must be a whole number")
    .min(20, "must be at least 20")
    .max(100_000)
    .optional(),
  seed: z.coerce.number().int("must be an integer").default(0),
  samples: z.coerce
    .number()
    .int("must be a whole number")
    .min(20, "must be at least 20")
    .max(100_000)
    .default(600),
  ratio: z.coerce.number().gt(1, "must be greater than 1").optional(),
  minAsr: z.coerce.number().min(0).max(1, "must be a share in [0, 1]").optional(),
  frr: z.coerce.number().gt(0, "must be in (0, 1)").lt(1, "must be in (0, 1)").default(0.01),
  tolerance: z.coerce.number().min(0, "must be at least 0").max(1, "must be at most 1").optional(),
  json: z.boolean().optional(),
  quiet: z.boolean().optional(),
});

export function registerAudit(program: Command): void {
  addReadOptions(
    program
      .command("audit")
      .argument("<model>", "the ONNX classifier to audit")
      .description(
        "Audit an ONNX image classifier for a backdoor: reverse-engineer the smallest trigger for each label " +
          "(Neural Cleanse), compare with known-clean reference models, calibrate STRIP input screening, " +
          "and write report.json and report.html",
      )
      .requiredOption(
        "--data <dataset>",
        "clean images like the model's inputs: a file, directory or bundled dataset (labels optional)",
      )
      .requiredOption(
        "--out <dir>",
        "directory for report.json and report.html (created if missing; a new audit replaces them)",
      )
      .option(
        "--reference <file.onnx>",
        "a known-clean model of the same task and architecture, to compare trigger sizes with (repeatable)",
        collect,
      )
      .option(
        "--input-shape <dims>",
        "the model's input without the batch, e.g. 1,28,28 (when it is symbolic)",
      )
      .option("--output <name>", "the graph output holding the class scores (when there are several)")
      .option("--inputs <dataset>", "images to screen with STRIP; those likely to carry a trigger are listed")
      .option(
        "--ledger <location>",
        "record the verdict as a finding on the model: SQLite file or postgres:// URL (default: $ANTIDOTE_LEDGER if set, else none)",
      )
      .option("--ledger-key <path>", "the ledger's signing key (default: ledger-key.pem beside the ledger)")
      .option("--steps <n>", "most optimisation steps per label (default 500)")
      .option("--seed <n>", "seed for the image sample, the inversion and STRIP", "0")
      .option("--samples <n>", "clean images drawn from --data", "600")
      .option(
        "--ratio <x>",
        "suspect a label when every reference needs an x times larger trigger (default 3)",
      )
      .option(
        "--min-asr <share>",
        "…and its reversed trigger flips at least this share of held-out clean images (default 0.8)",
      )
      .option("--frr <share>", "STRIP: accepted false-rejection rate on clean inputs", "0.01")
      .option(
        "--tolerance <x>",
        "largest |ONNX Runtime − TF.js copy| accepted before any gradient is trusted (default 1e-4)",
      )
      .option("--json", "print a JSON summary on stdout (report.json has everything)")
      .option("--quiet", "print only where the reports are")
      .addHelpText(
        "after",
        `
The read options (--format, --image-column, --label-column, --split, …) apply to --data.
For each label the audit finds the smallest mask and pattern that turn clean images of the other
labels into it. A backdoor is a shortcut, so its label needs a far smaller trigger than the same
label in a clean model. With --reference, a label is suspected when every reference needs a
trigger --ratio times larger; without one, only the MAD anomaly index is left, which also flags
labels that are naturally easy to reach. A reference should be a clean model of the same task and
architecture: trigger sizes differ between architectures (on Fashion-MNIST a small CNN's are
2–3× smaller than an MLP's), and with several references a label must be smaller than in each.
Gradients go through a TF.js copy of the ONNX graph, checked against ONNX Runtime first; the
audit refuses a model whose copy differs by more than --tolerance. A small CNN on 28×28 images
takes 30–60 s to invert on two cores, and as long again for each CNN reference.

Exit status is 0 whenever the audit ran, backdoor or not (read verdict.backdoor in --json or
report.json); 2 for bad flags, 3 for a model, reference or dataset Antidote cannot use.

Examples:
  antidote audit model.onnx --data fashion-mnist:test --reference clean.onnx --out out/audit
  antidote audit model.onnx --data holdout/ --out out/audit --ledger .antidote/ledger.db
  antidote audit model.onnx --data holdout.parquet --image-column img --inputs suspicious/ --out out/audit
  antidote audit model.onnx --data fashion-mnist:test --samples 400 --steps 300 --seed 3 --out out/audit --json`,
      ),
  ).action(async (modelPath: string, flags: Record<string, unknown>) => {
    const f = parseFlags(auditFlags, flags);
    const out = resolve(f.out);
    if (existsSync(out) && !statSync(out).isDirectory())
      throw new AntidoteError("USAGE", `--out ${f.out}: exists and is not a directory.`);
    const chatty = !f.json && !f.quiet;
    const ledgerLocation = f.ledger ?? (process.env.ANTIDOTE_LEDGER || undefined);
    const ledger: Ledger | undefined =
      ledgerLocation === undefined
        ? undefined
        : await openLedger({
            location: ledgerLocation,
            ...(f.ledgerKey !== undefined ? { keyPath: f.ledgerKey } : {}),
          });
    const progress = auditProgress(chatty);
    let report: AuditReport;
    try {
      report = await auditModel(modelPath, {
        data: f.data,
        dataReadOptions: readOptionsFrom(flags),
        references: f.reference,
        ...(f.inputShape !== undefined ? { inputShape: f.inputShape } : {}),
        ...(f.output !== undefined ? { output: f.output } : {}),
        samples: f.samples,
        seed: f.seed,
        ...(f.steps !== undefined ? { steps: f.steps } : {}),
        ...(f.ratio !== undefined ? { ratio: f.ratio } : {}),
        ...(f.minAsr !== undefined ? { minAsr: f.minAsr } : {}),
        ...(f.tolerance !== undefined ? { translationTolerance: f.tolerance } : {}),
        strip: { frr: f.frr, ...(f.inputs !== undefined ? { inputs: f.inputs } : {}) },
        ...(ledger !== undefined ? { ledger } : {}),
        onStage: progress.stage,
        onInversion: progress.inversion,
      });
    } finally {
      progress.stop();
      await ledger?.close();
    }
    const json = buildAuditReportJson(report, { model: modelPath, data: f.data, outDir: f.out });
    const jsonPath = join(out, "report.json");
    const htmlPath = join(out, "report.html");
    // The audit owns report.json and report.html in --out: each is replaced whole, never half-written.
    const guard = { overwrite: true, inputs: [modelPath, f.data, ...f.reference] };
    await writeOutputFile(jsonPath, JSON.stringify(json, null, 2) + "\n", guard);
    await writeOutputFile(htmlPath, renderAuditHtml(json), guard);
    if (f.json) process.stdout.write(JSON.stringify(summaryJson(json, jsonPath, htmlPath), null, 2) + "\n");
    else if (f.quiet) process.stdout.write(`${htmlPath}\n${jsonPath}\n`);
    else process.stdout.write(summaryText(json, jsonPath, htmlPath));
  });
}

// Stage lines and an optimisation bar on stderr, on a terminal only, so pipes and CI logs stay clean.
function auditProgress(enabled: boolean): {
  stage: (name: string) => void;
  inversion: (p: {
    model: string;
    index: number;
    of: number;
    step: number;
    maxSteps: number;
    labelsDone: number;
    labels: number;
  }) => void;
  stop: () => void;
} {
  const tty = enabled && process.stderr.isTTY;
  let bar: cliProgress.SingleBar | undefined;
  let current = -1;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    stage(name) {
      stopBar();
      if (tty && name !== "invert") process.stderr.write(`  ${name}…\n`);
    },
    inversion(p) {
      if (!tty) return;
      if (p.index !== current) {
        stopBar();
        current = p.index;
        const who = p.index === 0 ? "model" : `reference ${p.index}/${p.of - 1}`;
        bar = new cliProgress.SingleBar(
          {
            format: `  inverting ${who} [{bar}] step {value}/{total} | labels done {done}/{labels}`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.maxSteps, 0, { done: 0, labels: p.labels });
      }
      bar?.update(p.step, { done: p.labelsDone, labels: p.labels });
    },
    stop: stopBar,
  };
}

function summaryJson(r: AuditReportJson, jsonPath: string, htmlPath: string): Record<string, unknown> {
  return {
    report: { json: jsonPath, html: htmlPath },
    model: r.model.path,
    digest: r.model.digest,
    references: r.references.map((m) => ({ path: m.path, digest: m.digest })),
    data: { name: r.data.name, images: r.data.used },
    verdict: r.verdict,
    labels: r.labels.map((l) => ({
      label: l.label,
      className: l.className,
      l1: l.l1,
      referenceL1: l.referenceL1,
      ratio: l.ratio,
      anomalyIndex: l.anomalyIndex,
      asr: l.asr,
      suspected: l.suspected,
    })),
    strip:
      r.strip === null
        ? null
        : {
            threshold: r.strip.threshold,
            frr: r.strip.frr,
            observedFrr: r.strip.observedFrr,
            inputs: r.strip.inputs === null ? null : { ...r.strip.inputs, flaggedInputs: undefined },
          },
    ledger: r.ledger,
    nextSteps: r.nextSteps,
    seconds: r.seconds,
  };
}

function summaryText(r: AuditReportJson, jsonPath: string, htmlPath: string): string {
  const lines: string[] = [];
  const v = r.verdict;
  const refs = r.references.length;
  lines.push(
    `audited ${r.model.path} (sha256 ${r.model.digest.slice(0, 12)}…) in ${r.seconds.toFixed(1)} s: ` +
      `${fmt(r.data.used)} clean images of ${r.data.name}, ${refs === 0 ? "no reference" : `${refs} reference${refs === 1 ? "" : "s"}`}`,
  );
  for (const w of [r.model, ...r.references].flatMap((m) => m.warnings.map((x) => `${m.path}: ${x}`)))
    lines.push(`  note: ${w}`);
  if (v.backdoor) {
    lines.push(`verdict: BACKDOOR SUSPECTED`);
    for (const s of v.suspected) {
      const l = r.labels.find((x) => x.label === s.label);
      lines.push(
        `  label ${name(s)}: trigger norm ${s.l1.toFixed(1)}` +
          (l?.referenceL1 != null && s.ratio !== null
            ? ` vs ${l.referenceL1.toFixed(1)} in the references (${s.ratio.toFixed(1)}× smaller)`
            : "") +
          `, MAD index ${s.anomalyIndex === null ? "∞" : s.anomalyIndex.toFixed(2)}, reversed-trigger ASR ${pct(s.asr)}`,
      );
    }
  } else {
    const top =
      v.method === "reference"
        ? [...r.labels].sort((a, b) => (b.ratio ?? 0) - (a.ratio ?? 0))[0]
        : [...r.labels].sort((a, b) => (b.anomalyIndex ?? Infinity) - (a.anomalyIndex ?? Infinity))[0];
    const detail =
      top === undefined
        ? ""
        : v.method === "reference"
          ? ` (largest ratio ${top.ratio === null ? "—" : top.ratio.toFixed(2)}, ${name(top)})`
          : ` (largest MAD index ${top.anomalyIndex === null ? "∞" : top.anomalyIndex.toFixed(2)}, ${name(top)})`;
    lines.push(`verdict: no backdoor found${detail}`);
  }
  if (v.method === "mad") lines.push(`  ${v.note}`);
  lines.push(
    `trigger norms: ${r.labels.map((l) => `${name(l)} ${l.l1.toFixed(1)}${l.suspected ? "*" : ""}`).join(", ")}`,
  );
  if (r.strip !== null) {
    lines.push(
      `STRIP: threshold ${r.strip.threshold.toFixed(3)} bits at FRR ${pct(r.strip.frr)} (observed ${pct(r.strip.observedFrr)})`,
    );
    const i = r.strip.inputs;
    if (i !== null)
      lines.push(`  ${i.name}: ${fmt(i.flagged)} of ${fmt(i.count)} inputs flagged (${pct(i.flaggedRate)})`);
  }
  if (r.ledger !== null)
    lines.push(
      `ledger: finding ${v.backdoor ? "backdoor-suspected" : "backdoor-audit-clean"} recorded in ${r.ledger.location}`,
    );
  lines.push(`report: ${htmlPath}`, `        ${jsonPath}`);
  const next = r.nextSteps.find((s) => s.command !== null);
  if (next?.command) lines.push(`next:   ${next.command}`);
  return lines.join("\n") + "\n";
}

function name(l: { label: number; className: string | null }): string {
  return l.className ?? String(l.label);
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
