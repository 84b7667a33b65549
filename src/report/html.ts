// Pieces the self-contained HTML reports share (scan, audit): the page and its base style,
// escaping, the summary cards and the list of next steps. Every string that came from a user or a model goes through escapeHtml.

/** Escape text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** A row of key/value cards (class names "cards", "card", "k", "v" in the report's CSS). */
export function cards(items: [string, string][]): string {
  return `<div class="cards">${items
    .map(
      ([k, v]) =>
        `<div class="card"><div class="k">${escapeHtml(k)}</div><div class="v">${escapeHtml(v)}</div></div>`,
    )
    .join("")}</div>`;
}

/** A report's "what to do next" section: why, and the command to run when there is one. */
export function nextStepsSection(
  title: string,
  steps: readonly { why: string; command: string | null }[],
): string {
  const items = steps
    .map(
      (s) =>
        `<li>${escapeHtml(s.why)}${s.command === null ? "" : `<pre class="cmd">${escapeHtml(s.command)}</pre>`}</li>`,
    )
    .join("\n");
  return `<section><h2>${escapeHtml(title)}</h2><ol class="steps">${items}</ol></section>`;
}

/** Layout, type, cards, tables and steps: the style every report starts from. */
const BASE_CSS = `
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; } .card .v { font-size: 20px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th { background: #eef1f4; font-weight: 600; font-size: 13px; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
ol.steps li { margin-bottom: 10px; }
`;

/** One self-contained page: no script, no external asset; `css` adds the report's own rules. */
export function htmlPage(title: string, css: string, sections: readonly string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${BASE_CSS}${css}</style>
</head>
<body>
<main>
${sections.filter((s) => s !== "").join("\n")}
</main>
</body>
</html>
`;
}
