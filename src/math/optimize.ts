// One-dimensional minimisation for the detectors' small fits (a power-law exponent, a
// calibration temperature): golden-section search, which needs no derivative and only that
// the function be unimodal on the bracket.

/** The minimiser of a unimodal `f` on [lo, hi], to within (hi − lo)·0.618^iterations. */
export function goldenSectionMin(f: (x: number) => number, lo: number, hi: number, iterations = 40): number {
  const g = (Math.sqrt(5) - 1) / 2;
  let a = hi - g * (hi - lo);
  let b = lo + g * (hi - lo);
  let fa = f(a);
  let fb = f(b);
  for (let it = 0; it < iterations; it++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - g * (hi - lo);
      fa = f(a);
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + g * (hi - lo);
      fb = f(b);
    }
  }
  return (lo + hi) / 2;
}
