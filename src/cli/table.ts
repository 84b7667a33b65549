// Plain aligned tables for humans; machines use --json.
export function printTable(
  header: string[],
  rows: (string | number)[][],
  out: NodeJS.WritableStream = process.stdout,
): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) =>
    r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c] ?? 0))).join("  ");
  out.write(line(header) + "\n");
  out.write(widths.map((w) => "─".repeat(w)).join("  ") + "\n");
  for (const r of cells.slice(1)) out.write(line(r) + "\n");
}
