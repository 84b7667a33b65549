// How numbers, times and ids are written on every page.
const nf = new Intl.NumberFormat("en");

export const count = (n: number): string => nf.format(n);
export const pct = (x: number): string => `${(x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 1)} %`;
export const short = (id: string, n = 12): string => (id.length > n ? `${id.slice(0, n)}…` : id);
export function when(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}
