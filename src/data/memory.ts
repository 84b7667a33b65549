// Datasets held in memory: for library users who already have their samples in arrays,
// and for tests. Same contract as the file readers and writers.
import type { Dataset, DatasetWriter } from "./dataset.js";
import type { DatasetInfo, Sample } from "./sample.js";

export function memoryDataset(samples: readonly Sample[], info: Partial<DatasetInfo> = {}): Dataset {
  return {
    info: { format: "jsonl", path: "(memory)", count: samples.length, ...info },
    samples: () => toAsync(samples),
  };
}

/** A writer that keeps what it is given; `samples` holds them after `close`. */
export class MemoryWriter implements DatasetWriter {
  readonly samples: Sample[] = [];
  write(sample: Sample): Promise<void> {
    this.samples.push(sample);
    return Promise.resolve();
  }
  close(): Promise<number> {
    return Promise.resolve(this.samples.length);
  }
}

/** Read every sample of a dataset into an array (small datasets and tests only). */
export async function collect(dataset: Dataset): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of dataset.samples()) out.push(s);
  return out;
}

// A plain generator lifted to an async iterable (no awaits needed for in-memory data).
function toAsync<T>(items: readonly T[]): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      let i = 0;
      return {
        next: () =>
          Promise.resolve(
            i < items.length ? { value: items[i++] as T, done: false } : { value: undefined, done: true },
          ),
      };
    },
  };
}
