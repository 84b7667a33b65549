// `antidote scan`: find the suspicious samples of a dataset, say why and where they came from,
// write report.json and a self-contained report.html, and (with a ledger) record the findings
// so that `quarantine` and `export` can act on them. A thin shell over `scanDataset`.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { writeOutputFile } from "../../data/atomic-output.js";
import { openDataset } from "../../data/open.js";
import { AntidoteError } from "../../errors.js";
import { openLedger } from "../../ledger/index.js";
import type { Ledger } from "../../ledger/types.js";
import { buildReportJson, type ScanReportJson } from "../../scan/report-json.js";
import { renderReportHtml } from "../../scan/report-html.js";
import { IMAGE_PROXIES } from "../../scan/representation.js";
import { DETECTORS, scanDataset, type ScanReport } from "../../scan/scan.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { progressBar, type ProgressBar } from "../progress.js";

const scanFlags = z
  .object({
    out: z.string().min(1),
    features: z.string().min(1).optional(),
    predProbs: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
    inputShape: z
      .string()
      .regex(
        /^\s*\d+\s*(,\s*\d+\s*)*$/,
        "must be comma-separated sizes, e.g. 3,224,224 (or 784 for a flat input)",
      )
      .transform((s) => s.split(",").map((d) => Number(d.trim())))
      .refine((dims) => dims.every((d) => d > 0), "sizes must be positive")
      .optional(),
    output: z.string().min(1).optional(),
    shiftedViews: z.boolean().default(true),
    ledger: z.string().min(1).optional(),
    ledgerKey: z.string().min(1).optional(),
    detectors: z
      .string()
      .min(1)
      .transform((s) =>
        s
          .split(",")
          .map((d) => d.trim())
          .filter((d) => d !== ""),
      )
      .optional(),
    seed: z.coerce.number().int("must be an integer").default(0),
    imageProxy: z.enum(IMAGE_PROXIES).default(IMAGE_PROXIES[0]),
    json: z.boolean().optional(),
    quiet: z.boolean().optional(),
  })
  .refine((f) => f.model !== undefined || f.inputShape === undefined, {
    message: "applies to --model only",
    path: ["inputShape"],
  })
  .refine((f) => f.model !== undefined || f.output === undefined, {
    message: "applies to --model only",
    path: ["output"],
  });

export function registerScan(program: Command): void {
  const names = DETECTORS.map((e) => e.detector.name).join(", ");
  addReadOptions(
    program
      .command("scan")
      .argument("<dataset>", "a file, directory or bundled dataset name (see `antidote datasets`)")
      .description(
        "Scan a dataset for poisoning (label flips, text triggers, near-duplicate bursts, bad annotators), " +
          "rank the suspicious samples, classes, sources and annotators, and write report.json and report.html",
      )
      .requiredOption(
        "--out <dir>",
        "directory for report.json and report.html (created if missing; a new scan replaces them)",
      )
      .option(
        "--features <file>",
        "your model's penultimate-layer features: .npy (n × k) or CSV (optional id column)",
      )
      .option(
        "--pred-probs <file>",
        "your model's out-of-sample class probabilities: .npy (n × classes) or CSV",
      )
      .option(
        "--model <file.onnx>",
        "your ONNX image classifier: the scan runs it for class probabilities and penultimate-layer features " +
          "(--features / --pred-probs, when given, win for what they provide)",
      )
      .option(
        "--input-shape <C,H,W>",
        "the model's input without batch, when the model leaves it symbolic (e.g. 3,224,224; 784 for a flat input)",
      )
      .option("--output <name>", "the model output holding the class scores, when it has several")
      .option(
        "--no-shifted-views",
        "run --model on each image only, not also on its four one-pixel shifts (5× faster inference; " +
          "confident learning finds fewer label flips)",
      )
      .option(
        "--ledger <location>",
        "record the findings in this ledger: SQLite file or postgres:// URL (default: $ANTIDOTE_LEDGER if set, else none)",
      )
      .option("--ledger-key <path>", "the ledger's signing key (default: ledger-key.pem beside the ledger)")
      .option("--detectors <names>", `comma-separated detectors to run (default: all that apply: ${names})`)
      .option(
        "--image-proxy <kind>",
        "without --model/--pred-probs, the image proxy's probabilities: mlp+cnn (k-fold MLP and CNN averaged; " +
          "finds label flips best) or mlp (the MLP alone: a 12k-image scan in ≈ 75 s instead of ≈ 3.5 min)",
        IMAGE_PROXIES[0],
      )
      .option("--seed <n>", "seed for the proxy model, MinHash and the ensemble's permutations", "0")
      .option("--json", "print a JSON summary on stdout (report.json has everything)")
      .option("--quiet", "print only where the reports are")
      .addHelpText(
        "after",
        `
Without --features / --pred-probs / --model, the scan builds its own proxy model: hashed word
TF-IDF and 5-fold logistic regression for text; for images, 3-fold MLP and CNN on pixels whose
probabilities are averaged, and the MLP's hidden layer as features (--image-proxy mlp: the MLP
alone); logistic regression on tabular features.
With --model, ONNX Runtime runs your image classifier over every sample: its probabilities
(averaged over the image and its four one-pixel shifts), and the activations entering its final
Gemm/MatMul as features. On the model's own training data its probabilities are in-sample (it is
confident on the flips it learned), so before confident learning they are averaged with two
out-of-sample opinions from those features: a 5-fold linear probe (retrained without the samples
the opinions put in another class) and the labels of each sample's 25 nearest neighbours.
A sample is flagged when a detector flags it at its own calibrated threshold, or when several
detectors' combined evidence is too strong for chance; risk > 0.5 means flagged.

Examples:
  antidote scan out/spam-trigger.jsonl --out out/scan
  antidote scan data.csv --text-column body --label-column category --out reports/ --ledger .antidote/ledger.db
  antidote scan fashion-mnist --features emb.npy --pred-probs probs.npy --out out/fm-scan
  antidote scan images/ --model classifier.onnx --out out/img-scan
  antidote scan photos.parquet --model resnet.onnx --input-shape 3,224,224 --output logits --out out/scan
  antidote scan data.parquet --detectors confident-learning,near-duplicates --seed 3 --out out/scan --json

Then act on it (report.html lists these commands with your paths):
  antidote quarantine --findings-over 0.5 --reason "scan 2026-11-24" --ledger .antidote/ledger.db
  antidote export --dataset <version> --exclude-quarantined --out clean.parquet --ledger .antidote/ledger.db`,
      ),
  ).action(async (spec: string, flags: Record<string, unknown>) => {
    const f = parseFlags(scanFlags, flags);
    // Checked here rather than in the schema so that the message names the flag as typed.
    if (!f.shiftedViews && f.model === undefined)
      throw new AntidoteError("USAGE", "--no-shifted-views: applies to --model only.");
    const out = resolve(f.out);
    if (existsSync(out) && !statSync(out).isDirectory())
      throw new AntidoteError("USAGE", `--out ${f.out}: exists and is not a directory.`);
    const chatty = !f.json && !f.quiet;
    const skipped: AntidoteError[] = [];
    const dataset = await openDataset(spec, { ...readOptionsFrom(flags), onSkip: (e) => skipped.push(e) });
    const ledgerLocation = f.ledger ?? (process.env.ANTIDOTE_LEDGER || undefined);
    const ledger: Ledger | undefined =
      ledgerLocation === undefined
        ? undefined
        : await openLedger({
            location: ledgerLocation,
            ...(f.ledgerKey !== undefined ? { keyPath: f.ledgerKey } : {}),
          });
    const progress = stageProgress(chatty, dataset.info.count);
    let report: ScanReport;
    try {
      report = await scanDataset(dataset, {
        features: f.features,
        predProbs: f.predProbs,
        model: f.model,
        inputShape: f.inputShape,
        output: f.output,
        shiftedViews: f.shiftedViews,
        detectors: f.detectors,
        seed: f.seed,
        imageProxy: f.imageProxy,
        ...(ledger !== undefined ? { ledger } : {}),
        onStage: progress.stage,
        onSample: progress.sample,
        onProgress: progress.model,
      });
    } finally {
      progress.stop();
      await ledger?.close();
    }
    const json = buildReportJson(report, {
      dataset: spec,
      outDir: f.out,
      ...(f.ledger !== undefined ? { ledgerFlag: f.ledger } : {}),
    });
    const jsonPath = join(out, "report.json");
    const htmlPath = join(out, "report.html");
    // The scan owns report.json and report.html in --out: each is replaced whole, never half-written,
    // and never onto a file the scan read.
    const guard = { overwrite: true, inputs: [dataset.info.path, f.features, f.predProbs, f.model] };
    await writeOutputFile(jsonPath, JSON.stringify(json, null, 2) + "\n", guard);
    await writeOutputFile(htmlPath, renderReportHtml(json, { previews: report.previews }), guard);
    if (f.json)
      process.stdout.write(
        JSON.stringify(summaryJson(json, jsonPath, htmlPath, skipped.length), null, 2) + "\n",
      );
    else if (f.quiet) process.stdout.write(`${htmlPath}\n${jsonPath}\n`);
    else process.stdout.write(summaryText(json, jsonPath, htmlPath, skipped));
  });
}

// Stage lines and a read bar on stderr, on a terminal only (progressBar checks the TTY).
function stageProgress(
  enabled: boolean,
  total: number | undefined,
): {
  stage: (name: string) => void;
  sample: (n: number) => void;
  model: (done: number, total: number) => void;
  stop: () => void;
} {
  const tty = enabled && process.stderr.isTTY;
  let bar: ProgressBar | undefined;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    stage(name) {
      stopBar();
      if (name === "read") bar = progressBar({ label: "reading", total, unit: "samples", enabled });
      else if (tty) process.stderr.write(`  ${name}…\n`);
    },
    sample(n) {
      bar?.update(n);
    },
    model(done, all) {
      bar ??= progressBar({ label: "model", total: all, unit: "samples", enabled });
      bar.update(done);
    },
    stop: stopBar,
  };
}

function summaryJson(
  r: ScanReportJson,
  jsonPath: string,
  htmlPath: string,
  skippedRows: number,
): Record<string, unknown> {
  return {
    report: { json: jsonPath, html: htmlPath },
    dataset: r.dataset.name,
    samples: r.dataset.samples,
    skippedRows,
    flagged: r.ensemble.flagged,
    flaggedRate: r.ensemble.flaggedRate,
    detectors: r.detectors.map((d) => ({
      name: d.name,
      status: d.status,
      flagged: d.flagged ?? null,
      reason: d.reason ?? null,
    })),
    triggers: r.triggers,
    anomalousSources: records(r.sources)
      .filter((s) => s.anomalous === true)
      .map((s) => s.name),
    anomalousAnnotators: records(r.annotators)
      .filter((a) => a.anomalous === true)
      .map((a) => a.name),
    topSamples: r.flagged
      .slice(0, 10)
      .map((s) => ({ id: s.id, label: s.label, risk: s.risk, detectors: s.detectors })),
    ledger: r.ledger,
    nextSteps: r.nextSteps,
    seconds: r.seconds,
  };
}

function summaryText(
  r: ScanReportJson,
  jsonPath: string,
  htmlPath: string,
  skipped: AntidoteError[],
): string {
  const lines: string[] = [];
  const d = r.dataset;
  const probs = (
    r.representation as {
      probabilities?: {
        from?: string;
        accuracy?: number | null;
        inSample?: boolean;
        probeAccuracy?: number;
      } | null;
    }
  ).probabilities;
  lines.push(
    `scanned ${fmt(d.samples)} samples of ${d.name} in ${r.seconds.toFixed(1)} s` +
      (skipped.length > 0 ? ` (${skipped.length} malformed rows skipped)` : ""),
  );
  if (probs?.from !== undefined)
    lines.push(
      `  probabilities: ${probs.from}${typeof probs.accuracy === "number" ? `, ${probs.inSample === true ? "accuracy on the labels" : "held-out accuracy"} ${pct(probs.accuracy)}` : ""}` +
        (typeof probs.probeAccuracy === "number"
          ? `, probe's held-out accuracy ${pct(probs.probeAccuracy)}`
          : ""),
    );
  const ran = r.detectors.filter((x) => x.status === "ran");
  lines.push(
    `flagged ${fmt(r.ensemble.flagged)} samples (${pct(r.ensemble.flaggedRate)}): ` +
      [
        ...ran.map((x) => `${x.name} ${fmt(x.flagged ?? 0)}`),
        ...(r.ensemble.byCombinedEvidenceOnly > 0
          ? [`combined evidence ${r.ensemble.byCombinedEvidenceOnly}`]
          : []),
      ].join(", "),
  );
  for (const g of r.exclusionCheck?.groups ?? [])
    if (g.verdict === "poison (flags stand)" && g.released > 0)
      lines.push(
        `  released: ${fmt(g.released)} of ${g.detector}'s ${fmt(g.samples)} in ${g.class} — a model trained without ` +
          "them still gives each of them its label (the class's own images, taken in with the poison)",
      );
    else if (g.verdict !== "poison (flags stand)")
      lines.push(
        `  dismissed: ${g.detector}'s ${fmt(g.samples)} in ${g.class} — a model trained without them still gives them ` +
          `${g.meanOwnProbability.toFixed(2)} of their label (a natural sub-population)`,
      );
  const skippedDetectors = r.detectors.filter((x) => x.status === "skipped");
  if (skippedDetectors.length > 0)
    lines.push(`  skipped: ${skippedDetectors.map((x) => `${x.name} (${x.reason ?? ""})`).join("; ")}`);
  for (const t of records(r.triggers))
    lines.push(
      `trigger: "${String(t.ngram)}" → ${String(t.target)}: ${String(t.flaggedCarriers)} of the ` +
        `${String(t.targetCount)} samples with it and the label flagged (the others read like the label anyway)`,
    );
  for (const t of records(r.imageTriggers)) {
    const at = records([t.region])[0] ?? {};
    lines.push(
      `trigger: pixel pattern at x ${String(at.x)}, y ${String(at.y)} (${String(at.width)}×${String(at.height)}) → ` +
        `${String(t.target)}: ${String(records([t.carriers])[0]?.flagged)} of the ${String(records([t.carriers])[0]?.labeled)} ` +
        `samples with it and the label flagged (look like another class without it)`,
    );
  }
  const groups = (title: string, rows: Record<string, unknown>[]) => {
    const top = rows.filter((g) => Number(g.flagged) > 0 || g.anomalous === true).slice(0, 3);
    if (top.length === 0) return;
    lines.push(`top ${title}:`);
    for (const g of top)
      lines.push(
        `  ${String(g.name).padEnd(24)} ${fmt(Number(g.flagged))} of ${fmt(Number(g.samples))} flagged (${pct(Number(g.rate))})` +
          `${g.anomalous === true ? "  ANOMALOUS" : ""}${typeof g.accuracy === "number" ? `  accuracy ${pct(g.accuracy)}` : ""}`,
      );
  };
  groups("sources", records(r.sources));
  groups("annotators", records(r.annotators));
  groups(
    "classes",
    records(r.classes).sort((a, b) => Number(b.rate) - Number(a.rate)),
  );
  if (r.flagged.length > 0) {
    lines.push("top samples:");
    for (const s of r.flagged.slice(0, 5))
      lines.push(
        `  ${s.risk.toFixed(3)}  ${s.id}  (${s.label ?? "unlabeled"})  ${s.detectors.join(", ") || "combined evidence"}`,
      );
  }
  const ledger = r.ledger as { findings?: number; location?: string } | null;
  if (ledger !== null && ledger.location !== undefined)
    lines.push(`ledger: ${fmt(ledger.findings ?? 0)} findings recorded in ${ledger.location}`);
  lines.push(`report: ${htmlPath}`, `        ${jsonPath}`);
  const next = r.nextSteps.find((s) => s.command !== null);
  if (next?.command) lines.push(`next:   ${next.command}`);
  return lines.join("\n") + "\n";
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v)
    ? v.filter((x): x is Record<string, unknown> => x !== null && typeof x === "object")
    : [];
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

function pct(x: number): string {
  return `${(100 * x).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;
}
