// Stream every sample of a dataset into a writer of another format. The output appears only
// when every sample is written (see atomic-output.ts): a malformed row half-way leaves an
// earlier output as it was, and the input can never be the output.
import type { Dataset } from "./dataset.js";
import { createWriter } from "./open.js";
import type { DatasetFormat } from "./sample.js";

export async function convertDataset(
  dataset: Dataset,
  output: string,
  options: {
    format?: DatasetFormat | undefined;
    gzip?: boolean | undefined;
    /** Replace an existing output (default: refuse). */
    overwrite?: boolean | undefined;
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
    overwrite: options.overwrite,
    inputs: [dataset.info.path],
  });
  let n = 0;
  try {
    for await (const sample of dataset.samples()) {
      await writer.write(sample);
      options.onSample?.(++n);
    }
  } catch (e) {
    await writer.abort();
    throw e;
  }
  const written = await writer.close();
  return { written, seconds: (performance.now() - started) / 1000 };
}
