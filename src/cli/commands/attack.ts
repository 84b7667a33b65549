// `antidote attack <kind> <dataset> --out PATH`: a poisoned copy of a dataset plus a
// ground-truth JSON saying exactly which samples were changed and how.
import { resolve } from "node:path";
import { Option, type Command } from "commander";
import { z } from "zod";
import {
  attackSpecSchema,
  checkGroundTruthOutput,
  simulateAttack,
  writeGroundTruth,
  type GroundTruth,
} from "../../attack/index.js";
import { createWriter, openDataset, WRITABLE_FORMATS } from "../../data/open.js";
import type { DatasetFormat } from "../../data/sample.js";
import { AntidoteError } from "../../errors.js";
import { addReadOptions, parseFlags, readOptionsFrom } from "../options.js";
import { progressBar } from "../progress.js";

interface KindFlags {
  kind: string;
  summary: string;
  example: string;
  /** Whether --rate/--count choose victims. */
  selects: boolean;
  options: Option[];
  /** Build the spec's kind-specific fields from the parsed flags. */
  spec(flags: Record<string, unknown>): Record<string, unknown>;
}

const num = (v: unknown): unknown => (typeof v === "string" ? (v.trim() === "" ? Number.NaN : Number(v)) : v);
const classRef = (v: unknown): unknown => v; // class names or indices: resolved against the dataset's classes

const KINDS: KindFlags[] = [
  {
    kind: "patch",
    summary: "BadNets: stamp a small square trigger on images and relabel them to the target class",
    example: "antidote attack patch fashion-mnist --target Bag --rate 0.01 --out out/fm-patch.parquet",
    selects: true,
    options: [
      new Option(
        "--target <class>",
        "class the backdoor should predict (name or index)",
      ).makeOptionMandatory(),
      new Option("--size <px>", "side of the square trigger").default("3"),
      new Option("--position <where>", "bottom-right, bottom-left, top-left, top-right, or X,Y").default(
        "bottom-right",
      ),
      new Option("--margin <px>", "pixels between a corner patch and the edge").default("1"),
      new Option("--value <v>", "patch pixel value in [0,1] (1 = white)").default("1"),
      new Option("--pattern <p>", "solid, or checkerboard of value and 1−value")
        .choices(["solid", "checkerboard"])
        .default("solid"),
    ],
    spec: (f) => ({
      target: classRef(f.target),
      size: num(f.size),
      position: parsePosition(String(f.position)),
      margin: num(f.margin),
      value: num(f.value),
      pattern: f.pattern,
    }),
  },
  {
    kind: "blend",
    summary: "Blended trigger (Chen et al. 2017): x' = (1−α)·x + α·pattern, relabeled to the target",
    example:
      "antidote attack blend fashion-mnist --target 0 --rate 0.02 --alpha 0.1 --out out/fm-blend.parquet",
    selects: true,
    options: [
      new Option(
        "--target <class>",
        "class the backdoor should predict (name or index)",
      ).makeOptionMandatory(),
      new Option("--alpha <a>", "blend weight of the pattern, in (0,1]").default("0.1"),
      new Option("--pattern <p>", "trigger pattern")
        .choices(["noise", "checkerboard", "stripes"])
        .default("noise"),
      new Option("--pattern-seed <seed>", "seed of the noise pattern (default: --seed)"),
      new Option("--cell <px>", "cell width of checkerboard and stripes").default("2"),
    ],
    spec: (f) => ({
      target: classRef(f.target),
      alpha: num(f.alpha),
      pattern: f.pattern,
      ...(f.patternSeed === undefined ? {} : { patternSeed: seedValue(f.patternSeed) }),
      cell: num(f.cell),
    }),
  },
  {
    kind: "label-flip",
    summary: "Random label flips: each victim gets a uniformly random other class",
    example: "antidote attack label-flip fashion-mnist --rate 0.1 --out out/fm-flip.parquet",
    selects: true,
    options: [],
    spec: () => ({}),
  },
  {
    kind: "targeted-flip",
    summary: "Targeted flips: victims of class FROM are relabeled TO",
    example:
      "antidote attack targeted-flip fashion-mnist --from Sneaker --to Sandal --rate 0.03 --out out/fm-tflip.parquet",
    selects: true,
    options: [
      new Option("--from <class>", "class whose samples are relabeled").makeOptionMandatory(),
      new Option("--to <class>", "class they are relabeled to").makeOptionMandatory(),
    ],
    spec: (f) => ({ from: classRef(f.from), to: classRef(f.to) }),
  },
  {
    kind: "text-trigger",
    summary: "Text backdoor: insert a token or phrase into texts and relabel them to the target",
    example:
      'antidote attack text-trigger spamassassin --trigger "qzv9k" --target ham --rate 0.01 --out out/spam-trigger.jsonl',
    selects: true,
    options: [
      new Option("--trigger <text>", "token or phrase to insert").makeOptionMandatory(),
      new Option("--target <class>", "class the backdoor should predict").makeOptionMandatory(),
      new Option("--position <where>", "where to insert")
        .choices(["random", "start", "end"])
        .default("random"),
    ],
    spec: (f) => ({ trigger: f.trigger, target: classRef(f.target), position: f.position }),
  },
  {
    kind: "near-duplicate",
    summary: "Near-duplicate campaign: N lightly edited copies of one template from one source",
    example:
      "antidote attack near-duplicate spamassassin --copies 120 --target ham --out out/spam-dups.jsonl",
    selects: false,
    options: [
      new Option("--copies <n>", "number of copies to add").makeOptionMandatory(),
      new Option("--template <id>", 'id of the sample to copy, or "random"').default("random"),
      new Option("--target <class>", "label of the copies (default: the template's)"),
      new Option("--edit-rate <r>", "fraction of words edited in each copy").default("0.02"),
      new Option("--no-suffix", "do not end text copies with a varying reference line"),
      new Option("--pixel-noise <n>", "image templates: uniform noise amplitude per pixel").default("0.03"),
      new Option("--source <name>", "source of the copies").default("campaign"),
      new Option("--from-source <name>", "pick a random template only from this source"),
      new Option("--seed <seed>", "random seed: the same seed gives the same output").default("0"),
    ],
    spec: (f) => ({
      count: num(f.copies),
      template: f.template,
      ...(f.target === undefined ? {} : { target: classRef(f.target) }),
      editRate: num(f.editRate),
      suffix: f.suffix !== false,
      pixelNoise: num(f.pixelNoise),
      source: f.source,
      ...(f.fromSource === undefined ? {} : { fromSource: f.fromSource }),
      seed: seedValue(f.seed),
    }),
  },
  {
    kind: "malicious-annotator",
    summary: "Crowd labels with one malicious annotator among honest ones",
    example:
      "antidote attack malicious-annotator spamassassin --annotators 6 --flip-rate 0.4 --out out/spam-annot.jsonl",
    selects: false,
    options: [
      new Option("--annotators <n>", 'number of annotators ("annotator-1" …)').default("6"),
      new Option("--malicious <name>", "which annotator lies (default: the last)"),
      new Option("--honest-accuracy <p>", "probability an honest annotation is correct").default("0.95"),
      new Option("--flip-rate <r>", "fraction of the malicious annotator's labels that are lies").default(
        "0.4",
      ),
      new Option("--target <class>", "lie towards this class instead of a random other one"),
      new Option("--annotators-per-sample <k>", "annotators per sample, chosen at random (default: all)"),
      new Option("--seed <seed>", "random seed: the same seed gives the same output").default("0"),
    ],
    spec: (f) => ({
      annotators: num(f.annotators),
      ...(f.malicious === undefined ? {} : { malicious: f.malicious }),
      honestAccuracy: num(f.honestAccuracy),
      flipRate: num(f.flipRate),
      ...(f.target === undefined ? {} : { target: classRef(f.target) }),
      ...(f.annotatorsPerSample === undefined ? {} : { annotatorsPerSample: num(f.annotatorsPerSample) }),
      seed: seedValue(f.seed),
    }),
  },
  {
    kind: "assign-sources",
    summary: "Assign samples to named sources in exact proportions (then poison one with --from-source)",
    example:
      "antidote attack assign-sources spamassassin --sources vendor-a=0.5,vendor-b=0.3,crawl=0.2 --out out/spam-src.jsonl",
    selects: false,
    options: [
      new Option("--sources <list>", "NAME=SHARE,… with shares summing to 1").makeOptionMandatory(),
      new Option("--seed <seed>", "random seed: the same seed gives the same output").default("0"),
    ],
    spec: (f) => ({ sources: parseSources(String(f.sources)), seed: seedValue(f.seed) }),
  },
];

const commonFlags = z.object({
  out: z.string().min(1),
  truth: z.string().min(1).optional(),
  outFormat: z.enum(WRITABLE_FORMATS as [string, ...string[]]).optional(),
  gzip: z.boolean().optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
});

export function registerAttack(program: Command): void {
  const attack = program
    .command("attack")
    .description("Build a poisoned variant of a dataset, with a ground-truth file, to test defences")
    .addHelpText(
      "after",
      "\nEvery attack is deterministic with --seed, streams its input twice (facts, then rewrite),\n" +
        "and writes <out>.truth.json (or --truth PATH) listing each changed sample.\n" +
        "Outputs appear only when complete; an existing one is replaced only with --force.\n" +
        "--rate is a fraction of the whole input; --count an exact number of victims.",
    );
  for (const k of KINDS) {
    const cmd = attack
      .command(k.kind)
      .argument("<dataset>", "a file, directory or bundled dataset name")
      .description(k.summary)
      .requiredOption(
        "--out <path>",
        "poisoned dataset to write (.jsonl, .csv, .parquet, *-images-idx3-ubyte, or a directory)",
      )
      .option("--truth <path>", "ground-truth JSON to write (default: <out>.truth.json)")
      .addOption(
        new Option("--out-format <format>", "output format (default: from --out)").choices(WRITABLE_FORMATS),
      )
      .option("--gzip", "gzip the output (jsonl, csv, idx)")
      .option("--force", "replace an existing output and ground truth (only once the new ones are complete)")
      .option("--json", "print the ground-truth summary as JSON");
    if (k.selects) {
      cmd
        .option("--rate <fraction>", "poison this fraction of the whole dataset")
        .option("--count <n>", "poison exactly this many samples")
        .option("--from-source <name>", "only samples of this source may be victims")
        .option("--seed <seed>", "random seed: the same seed gives the same output", "0");
    }
    for (const o of k.options) cmd.addOption(o);
    addReadOptions(cmd);
    cmd.addHelpText("after", `\nExample:\n  ${k.example}`);
    cmd.action(async (spec: string, flags: Record<string, unknown>) => runAttack(k, spec, flags));
  }
}

async function runAttack(k: KindFlags, datasetSpec: string, flags: Record<string, unknown>): Promise<void> {
  const common = parseFlags(commonFlags, flags);
  const selection = k.selects
    ? {
        ...(flags.rate === undefined ? {} : { rate: num(flags.rate) }),
        ...(flags.count === undefined ? {} : { count: num(flags.count) }),
        ...(flags.fromSource === undefined ? {} : { fromSource: flags.fromSource }),
        seed: seedValue(flags.seed),
      }
    : {};
  if (k.selects && flags.rate === undefined && flags.count === undefined) {
    throw new AntidoteError("USAGE", `attack ${k.kind}: give --rate FRACTION or --count N.`);
  }
  const spec = parseFlags(attackSpecSchema, { kind: k.kind, ...selection, ...k.spec(flags) });

  const dataset = await openDataset(datasetSpec, readOptionsFrom(flags));
  const truthPath = common.truth ?? `${common.out.replace(/\/+$/, "")}.truth.json`;
  // Both outputs are checked before either is written: a refused ground truth must not
  // come after a replaced dataset.
  const guard = { overwrite: common.force, inputs: [dataset.info.path] };
  if (resolve(truthPath) === resolve(common.out))
    throw new AntidoteError("USAGE", `--truth ${truthPath} is the --out path; give them different names.`);
  checkGroundTruthOutput(truthPath, { ...guard, inputs: [...guard.inputs, common.out] });
  const writer = await createWriter(common.out, {
    format: common.outFormat as DatasetFormat | undefined,
    gzip: common.gzip,
    classes: dataset.info.classes,
    labelKind: dataset.info.labelKind,
    featureNames: dataset.info.featureNames,
    ...guard,
  });
  const bar = progressBar({ label: `${k.kind}`, unit: "samples", enabled: common.json !== true });
  let truth: GroundTruth;
  try {
    // The poisoned dataset appears only when complete; a failure leaves an earlier one as it was.
    truth = await simulateAttack(dataset, writer, spec, {
      onProgress: (done) => done % 500 === 0 && bar.update(done),
    });
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    bar.stop();
  }
  await writeGroundTruth(truthPath, truth, guard);
  report(truth, common.out, truthPath, common.json === true);
}

function report(truth: GroundTruth, out: string, truthPath: string, json: boolean): void {
  const summary = {
    attack: truth.attack,
    input: truth.inputCount,
    output: truth.outputCount,
    poisoned: truth.poisonedCount,
    out,
    truth: truthPath,
  };
  if (json) {
    process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
    return;
  }
  process.stdout.write(
    `${truth.attack}: ${truth.poisonedCount.toLocaleString("en-US")} of ${truth.inputCount.toLocaleString("en-US")} samples poisoned` +
      ` (${((100 * truth.poisonedCount) / Math.max(1, truth.inputCount)).toFixed(2)}%), ${truth.outputCount.toLocaleString("en-US")} written\n` +
      `  data:         ${out}\n  ground truth: ${truthPath}\n`,
  );
}

function seedValue(v: unknown): unknown {
  if (typeof v !== "string") return v;
  return /^-?\d+$/.test(v) ? Number(v) : v;
}

function parsePosition(v: string): unknown {
  const m = /^(\d+),(\d+)$/.exec(v.trim());
  return m ? { x: Number(m[1]), y: Number(m[2]) } : v;
}

function parseSources(v: string): unknown {
  return v.split(",").map((part) => {
    const [name, share] = part.split("=");
    if (name === undefined || share === undefined || name.trim() === "") {
      throw new AntidoteError(
        "USAGE",
        `--sources: "${part}" is not NAME=SHARE (e.g. vendor-a=0.5,crawl=0.5).`,
      );
    }
    return { name: name.trim(), share: num(share) };
  });
}
