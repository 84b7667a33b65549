// Pieces the self-contained HTML reports share (scan, audit): escaping, the summary cards and
// the list of next steps. Every string that came from a user or a model goes through escapeHtml.

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
