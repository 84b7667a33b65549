// Numeric columns filled one row at a time from a stream whose length is known only at its end
// (a JSONL file) or up front (IDX, Parquet: DatasetInfo.count). With the count given, the store
// is allocated once at its final size and handed over without a copy; otherwise it grows by half
// again each time it fills, and `finish` copies it down to the rows written.

type NumericArray = Float32Array | Float64Array | Int32Array;

interface NumericArrayConstructor<T extends NumericArray> {
  new (length: number): T;
}

/** Rows of `width` numbers appended in order; `finish` returns them as one row-major array. */
export class GrowableRows<T extends NumericArray> {
  private store: T;
  private count = 0;

  constructor(
    private readonly make: NumericArrayConstructor<T>,
    readonly width: number,
    expectedRows = 0,
  ) {
    this.store = new make(Math.max(expectedRows, 1024) * width);
  }

  /** Rows appended so far. */
  get rows(): number {
    return this.count;
  }

  /** Append the rows laid out row-major in `values` (a whole number of rows). */
  append(values: ArrayLike<number>): void {
    const rows = this.width === 0 ? 1 : Math.floor(values.length / this.width);
    this.reserve(this.count + rows);
    this.store.set(values, this.count * this.width);
    this.count += rows;
  }

  /** Append one row holding a single value (width 1). */
  push(value: number): void {
    this.reserve(this.count + 1);
    this.store[this.count * this.width] = value;
    this.count++;
  }

  /** The rows written, exactly rows × width long: the store itself when it is full, else a copy. */
  finish(): T {
    const used = this.count * this.width;
    return used === this.store.length ? this.store : (this.store.slice(0, used) as T);
  }

  private reserve(rows: number): void {
    if (rows * this.width <= this.store.length) return;
    const grown = new this.make(
      Math.max(rows, Math.ceil((this.store.length / this.width) * 1.5)) * this.width,
    );
    grown.set(this.store.subarray(0, this.count * this.width));
    this.store = grown;
  }
}
