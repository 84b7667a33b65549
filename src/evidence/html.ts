// The pack as one printable HTML page for people: a summary table (controls × status), each
// control's claims with the ledger events that prove them, the gaps in their own section, and
// the framework mapping. Self-contained (inline CSS, no script, no external asset), so it can
// be archived, printed to PDF, or opened years later offline. Every value from the ledger is
// escaped: names, reasons and parameters come from suppliers and users.
import { CONTROLS, controlDefinition } from "./frameworks.js";
import type { EvidencePack } from "./schema.js";

const STATUS_LABEL: Record<string, string> = {
  done: "Done",
  partial: "Partial",
  gap: "Gap",
  "not-applicable": "Not applicable",
};

export function evidenceHtml(pack: EvidencePack): string {
  const s = pack.subject;
  const title =
    s.type === "model" ? `Evidence pack — model ${s.name}` : `Evidence pack — dataset version ${s.version}`;
  // [label, cell HTML]: every value from the ledger escaped here, once.
  const subjectRows: [string, string][] =
    s.type === "model"
      ? [
          ["Model", esc(`${s.name} (${s.format})`)],
          ["Digest", esc(s.digest)],
          ["Registered", `${esc(s.registeredAt)} ${eventRef(s.event.seq, s.event.hash)}`],
          ["Trained on", esc(s.trainedOn.join(", ") || "—")],
          ["Base model", esc(s.baseModel ?? "none (trained from scratch)")],
        ]
      : [
          ["Dataset version", esc(`${s.version} (${s.name})`)],
          ["Samples", String(s.sampleCount)],
          ["Recorded", eventRef(s.event.seq, s.event.hash)],
        ];
  const body = [
    `<h1>${esc(title)}</h1>`,
    `<p class="meta">Built ${esc(pack.generatedAt)} by ${esc(pack.tool.name)} ${esc(pack.tool.version)} from the ledger's signed checkpoint #${pack.checkpoint.seq} (tree root <code>${esc(pack.checkpoint.root)}</code>, key <code>${esc(pack.checkpoint.keyId.slice(0, 16))}…</code>). Verify with <code>antidote evidence verify</code>.</p>`,
    table(
      ["", ""],
      subjectRows.map(([label, cell]) => [esc(label), cell]),
    ),
    `<h2>Lineage</h2>`,
    `<p>${pack.lineage.samples} distinct samples in ${pack.lineage.versions.length} dataset version(s), from ${pack.lineage.deliveries} deliveries by ${pack.lineage.sources.length} source(s).</p>`,
    table(
      ["Source", "Kind", "Trust", "Signatures", "Samples", "Registered"],
      pack.lineage.sources.map((x) => [
        esc(x.name),
        esc(x.kind),
        String(x.trust),
        x.requireSignature ? "required" : "not required",
        String(x.samples),
        eventRef(x.event.seq, x.event.hash),
      ]),
    ),
    `<h2>Summary</h2>`,
    table(
      ["Control", "Status", "Claims", "Gaps"],
      pack.controls.map((c) => [
        `<a href="#control-${c.id}">${esc(c.title)}</a>`,
        `<span class="status ${c.status}">${STATUS_LABEL[c.status] ?? c.status}</span>`,
        String(c.claims.length),
        String(c.gaps.length),
      ]),
    ),
    `<h2>Controls and their evidence</h2>`,
    ...pack.controls.map((c) => {
      const def = controlDefinition(c.id);
      const claims = c.claims.map(
        (cl) =>
          `<li><p>${esc(cl.statement)}</p><p class="result">Result: ${esc(cl.result)}</p>` +
          `<p class="small">${cl.from === null ? "" : `When: ${esc(cl.from)}${cl.to !== cl.from && cl.to !== null ? ` – ${esc(cl.to)}` : ""}. `}` +
          `${cl.by.length > 0 ? `By: ${esc(cl.by.join(", "))}. ` : ""}` +
          `${cl.outsideLog !== undefined ? `Recorded outside the ledger log: ${esc(cl.outsideLog)}. ` : ""}` +
          `Events: ${cl.events.length === 0 ? "none" : eventList(cl.events)}</p></li>`,
      );
      return [
        `<section id="control-${c.id}"><h3>${esc(c.title)} — <span class="status ${c.status}">${STATUS_LABEL[c.status] ?? c.status}</span></h3>`,
        `<p class="purpose">${esc(def.purpose)}</p>`,
        c.notApplicable !== undefined
          ? `<p><strong>Not applicable:</strong> ${esc(c.notApplicable)}</p>`
          : "",
        claims.length > 0
          ? `<ol class="claims">${claims.join("")}</ol>`
          : `<p>No claim: nothing is recorded.</p>`,
        c.gaps.length > 0 ? `<p class="small">Gaps: see <a href="#gaps-${c.id}">below</a>.</p>` : "",
        `</section>`,
      ].join("\n");
    }),
    `<h2 id="gaps">Gaps — what was not done or not recorded</h2>`,
    pack.controls.some((c) => c.gaps.length > 0)
      ? pack.controls
          .filter((c) => c.gaps.length > 0)
          .map(
            (c) =>
              `<h3 id="gaps-${c.id}">${esc(c.title)}</h3><ul class="gaps">${c.gaps.map((g) => `<li>${esc(g)}</li>`).join("")}</ul>`,
          )
          .join("\n")
      : `<p>None.</p>`,
    `<h2>Framework mapping</h2>`,
    table(
      ["Control", "Framework", "Id", "Title"],
      CONTROLS.flatMap((c) =>
        c.mappings.map((m, i) => [i === 0 ? esc(c.title) : "", esc(m.framework), esc(m.id), esc(m.title)]),
      ),
    ),
    `<h2>Ledger checkpoint</h2>`,
    table(
      ["", ""],
      [
        ["Tree size (events)", String(pack.checkpoint.seq)],
        ["Head event hash", `<code>${esc(pack.checkpoint.hash)}</code>`],
        ["Tree root", `<code>${esc(pack.checkpoint.root)}</code>`],
        ["Signed at", esc(pack.checkpoint.at)],
        ["Key id", `<code>${esc(pack.checkpoint.keyId)}</code>`],
        ["Signature", `<code class="wrap">${esc(pack.checkpoint.signature)}</code>`],
      ],
    ),
  ].join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem}h3{margin-bottom:.3rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #ccd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f6}code{font-size:.85em;word-break:break-all}.wrap{white-space:pre-wrap}
.meta,.small{color:#555;font-size:.85rem}.result{margin:.1rem 0}.purpose{font-style:italic}
.status{font-weight:600;padding:0 .3rem;border-radius:3px}.done{background:#d8f0dc}.partial{background:#fdf0c8}
.gap{background:#f8d7d7}.not-applicable{background:#e6e6ea}ol.claims li{margin-bottom:.6rem}ol.claims p{margin:.1rem 0}
@media print{body{margin:0;max-width:none}section{break-inside:avoid-page}a{color:inherit;text-decoration:none}}
`;

function table(head: string[], rows: string[][]): string {
  const th = head.some((h) => h !== "")
    ? `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>`
    : "";
  return `<table>${th}<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

function eventRef(seq: number, hash: string): string {
  return `<a id="event-${seq}" title="${esc(hash)}">#${seq}</a> <code>${esc(hash.slice(0, 16))}…</code>`;
}

function eventList(events: readonly { seq: number; hash: string }[]): string {
  const shown = events
    .slice(0, 50)
    .map((e) => `<code title="${esc(e.hash)}">#${e.seq}:${esc(e.hash.slice(0, 12))}</code>`);
  const more = events.length > 50 ? ` … and ${events.length - 50} more (all listed in evidence.json)` : "";
  return shown.join(", ") + more;
}

function esc(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}
