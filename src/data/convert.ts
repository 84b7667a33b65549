// Stream every sample of a dataset into a writer of another format.
import type { Dataset } from "./dataset.js";
import { createWriter } from "./open.js";
import type { DatasetFormat } from "./sample.js";

export async function convertDataset(
  dataset: Dataset,
  output: string,
  options: {
    format?: DatasetFormat | undefined;
    gzip?: boolean | undefined;
    onSample?: (n: number) => void;
  } = {},
): Promise<{ written: number; seconds: number }> {
  const started = performance.now();
  const writer = await createWriter(output, {
    format: options.format,
    gzip: options.gzip,
    classes: dataset.info.classes,
    labelKind: dataset.info.labelKind,
    featureNames: dataset.info.featureNames,
  });
  let n = 0;
  for await (const sample of dataset.samples()) {
    await writer.write(sample);
    options.onSample?.(++n);
  }
  const written = await writer.close();
  return { written, seconds: (performance.now() - started) / 1000 };
}
