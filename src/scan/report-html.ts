// report.html: the scan for people. One self-contained file — inline CSS, hand-written inline SVG
// bar charts, thumbnails as PNG data URIs, no script and no external asset — so it can be mailed,
// archived with the dataset or opened offline. Every string that came from the data (ids, labels,
// texts, source and annotator names, n-grams, evidence) goes through `escapeHtml`.
import type { JsonValue } from "../data/sample.js";
import { cards, escapeHtml, htmlPage, nextStepsSection } from "../report/html.js";

export { escapeHtml };
import type { FlaggedSampleJson, ScanReportJson } from "./report-json.js";
import type { SamplePreview } from "./scan.js";

export interface HtmlOptions {
  /** Previews by dataset index (ScanReport.previews). */
  previews?: ReadonlyMap<number, SamplePreview>;
  /** Flagged samples listed (highest risk first); the rest are counted. */
  maxSamples?: number;
}

export function renderReportHtml(report: ScanReportJson, options: HtmlOptions = {}): string {
  const previews = options.previews ?? new Map<number, SamplePreview>();
  const maxSamples = options.maxSamples ?? 500;
  const d = report.dataset;
  const e = report.ensemble;
  const ran = report.detectors.filter((x) => x.status === "ran");
  const skipped = report.detectors.filter((x) => x.status === "skipped");
  const sections = [
    header(report),
    cards([
      ["samples", fmt(d.samples)],
      ["flagged", `${fmt(e.flagged)} (${pct(e.flaggedRate)})`],
      ["detectors", `${ran.length} ran, ${skipped.length} skipped`],
      ["time", `${report.seconds.toFixed(1)} s`],
    ]),
    nextStepsSection("What to do next", report.nextSteps),
    triggersSection(report.triggers),
    imageTriggersSection(report.imageTriggers),
    groupSection(
      "Classes",
      "class",
      classRows(report.classes),
      "Flag rate per class. A backdoor or a targeted flip piles its samples into the target class.",
    ),
    groupSection("Sources", "source", groupRows(report.sources), sourcesNote(report)),
    groupSection(
      "Annotators",
      "annotator",
      groupRows(report.annotators),
      "Flag rate over the samples where the annotator gave the flagged label, and accuracy against the consensus where several annotators labeled each sample.",
    ),
    samplesSection(report.flagged, previews, maxSamples),
    detectorsSection(report),
    exclusionCheckSection(report),
    representationSection(report),
    warningsSection(report.warnings),
    timingsSection(report),
  ];
  return htmlPage(`Antidote scan — ${d.name}`, CSS, sections);
}

const CSS = `
:root { --fg: #1d232b; --muted: #5c6773; --line: #d9dee4; --bg: #f6f7f9; --bad: #c0392b; --ok: #2e7d5b; --bar: #4a6fa5; --mark: #ffe08a; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.muted { color: var(--muted); } .bad { color: var(--bad); font-weight: 600; } .ok { color: var(--ok); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 150px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
pre, code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #fff; border: 1px solid var(--line); padding: 8px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 4px 0; }
pre.cmd { background: #1d232b; color: #f2f4f7; border: 0; }
.excerpt { max-height: 220px; overflow-y: auto; }
mark { background: var(--mark); padding: 0 1px; font-weight: 700; }
img.thumb { width: 84px; height: auto; image-rendering: pixelated; border: 1px solid var(--line); background: #000; }
details summary { cursor: pointer; color: var(--muted); }
.chart { background: #fff; border: 1px solid var(--line); margin: 6px 0 10px; }
.pill { display: inline-block; padding: 0 6px; border-radius: 9px; background: #eef1f4; font-size: 12px; margin: 0 3px 3px 0; }
.pill.bad { background: #fbe3e0; }
`;

function header(r: ScanReportJson): string {
  const d = r.dataset;
  return `<header>
<h1>Antidote scan — ${escapeHtml(d.name)}</h1>
<div class="muted">${escapeHtml(d.format)} · ${escapeHtml(d.content.join(", ") || "no content")} · ${fmt(d.samples)} samples (${fmt(d.labeled)} labeled${d.labelOrigin === "consensus" ? " by the annotators' consensus" : ""}) · ${d.classes.length} classes · ${fmt(d.sources)} sources · ${fmt(d.annotators)} annotators</div>
<div class="muted">antidote ${escapeHtml(r.tool.version)} · ${escapeHtml(r.createdAt)} · report schema ${escapeHtml(r.schema)}/${r.schemaVersion} · dataset root <code>${escapeHtml(d.merkleRoot)}</code></div>
</header>`;
}

function triggersSection(triggers: JsonValue): string {
  const rows = records(triggers);
  if (rows.length === 0) return "";
  const body = rows
    .map(
      (t) =>
        `<tr><td><mark>${escapeHtml(t.ngram)}</mark></td><td>${escapeHtml(t.target)}</td><td class="num">${escapeHtml(t.targetCount)} of ${escapeHtml(t.count)}</td><td class="num">${escapeHtml(t.flaggedCarriers)} (${escapeHtml(t.naturalCarriers)} natural)</td><td class="num">10<sup>${num(t.log10AdjustedPValue, 1)}</sup></td></tr>`,
    )
    .join("");
  return `<section><h2>Text triggers</h2>
<p>N-grams whose documents carry one label far more often than what the rest of each document says; the documents mostly read like another class — the dirty-label backdoor signature.</p>
<table><thead><tr><th>n-gram</th><th>target label</th><th class="num">documents with the target label</th><th class="num">of those flagged (read like another class)</th><th class="num">adjusted p-value</th></tr></thead><tbody>${body}</tbody></table></section>`;
}

function imageTriggersSection(triggers: JsonValue): string {
  const rows = records(triggers);
  if (rows.length === 0) return "";
  const body = rows
    .map((t) => {
      const region = records([t.region ?? {}])[0] ?? {};
      const pattern = Array.isArray(t.pattern) ? t.pattern.map((line) => str(line)).join("\n") : "";
      return `<tr><td><pre>${escapeHtml(pattern)}</pre></td><td class="num">x ${escapeHtml(region.x)}, y ${escapeHtml(region.y)}, ${escapeHtml(region.width)}×${escapeHtml(region.height)}</td><td>${escapeHtml(t.target)}</td><td class="num">${escapeHtml(t.mismatchedCarriers)} (expected ${num(t.expectedMismatchedCarriers, 1)})</td><td class="num">${escapeHtml(records([t.carriers ?? {}])[0]?.flagged)} of ${escapeHtml(records([t.carriers ?? {}])[0]?.labeled)}</td><td class="num">${num(t.explainedShare, 2)}</td><td class="num">10<sup>${num(t.log10AdjustedPValue, 1)}</sup></td></tr>`;
    })
    .join("");
  return `<section><h2>Image triggers</h2>
<p>Pixel patterns at a fixed place whose images carry one label while, without the pattern, they look like another class; with the pattern in place a pixel model puts them back in the label — the dirty-label backdoor signature (a stamped patch). Pattern: the strongest window, # on, . off.</p>
<table><thead><tr><th>pattern</th><th class="num">region (pixels)</th><th>target label</th><th class="num">images with the label that look otherwise</th><th class="num">carriers with the label flagged</th><th class="num">share the pattern explains</th><th class="num">adjusted p-value</th></tr></thead><tbody>${body}</tbody></table></section>`;
}

interface BarRow {
  name: string;
  samples: number;
  flagged: number;
  rate: number;
  anomalous: boolean;
  detail: string;
  extra: string;
}

function classRows(classes: JsonValue): BarRow[] {
  return records(classes).map((c) => ({
    name: str(c.name),
    samples: Number(c.samples),
    flagged: Number(c.flagged),
    rate: Number(c.rate),
    anomalous: false,
    detail: byDetector(c.flaggedBy),
    extra: `mean risk ${num(c.meanRisk, 3)}`,
  }));
}

function groupRows(groups: JsonValue): BarRow[] {
  return records(groups).map((g) => ({
    name: str(g.name),
    samples: Number(g.samples),
    flagged: Number(g.flagged),
    rate: Number(g.rate),
    anomalous: g.anomalous === true,
    detail: byDetector(g.flaggedBy),
    extra: [
      `p = ${sci(Number(g.pValue))} (${escapeHtml(g.test)})`,
      typeof g.accuracy === "number" ? `accuracy ${num(g.accuracy, 3)}` : "",
      Array.isArray(g.checks) && g.checks.length > 0
        ? `named by ${g.checks.map((c) => escapeHtml(c)).join(", ")}`
        : "",
    ]
      .filter(Boolean)
      .join(" · "),
  }));
}

function sourcesNote(r: ScanReportJson): string {
  const un =
    r.unattributedSamples > 0
      ? ` ${fmt(r.unattributedSamples)} samples have no source and are left out.`
      : "";
  return `Each source's flag rate against the others' (one-sided exact test per detector, Holm-corrected over sources and detectors; anomalous below 0.01).${un}`;
}

function groupSection(title: string, what: string, rows: BarRow[], note: string): string {
  if (rows.length === 0) return "";
  const shown = rows.slice(0, 40);
  const table = shown
    .map(
      (g) =>
        `<tr><td>${g.anomalous ? `<span class="bad">${escapeHtml(g.name)}</span>` : escapeHtml(g.name)}</td><td class="num">${fmt(g.samples)}</td><td class="num">${fmt(g.flagged)}</td><td class="num">${pct(g.rate)}</td><td>${g.detail}</td><td class="muted">${g.extra}</td></tr>`,
    )
    .join("");
  const more =
    rows.length > shown.length
      ? `<p class="muted">${rows.length - shown.length} more in report.json.</p>`
      : "";
  return `<section><h2>${escapeHtml(title)}</h2><p class="muted">${escapeHtml(note)}</p>
${barChart(shown.map((g) => ({ label: g.name, value: g.rate, text: `${fmt(g.flagged)} / ${fmt(g.samples)} (${pct(g.rate)})`, bad: g.anomalous })))}
<table><thead><tr><th>${escapeHtml(what)}</th><th class="num">samples</th><th class="num">flagged</th><th class="num">rate</th><th>flagged by</th><th>evidence</th></tr></thead><tbody>${table}</tbody></table>${more}</section>`;
}

/** Horizontal bars, one per row, scaled to the largest value; inline SVG with escaped labels. */
export function barChart(rows: { label: string; value: number; text: string; bad: boolean }[]): string {
  if (rows.length === 0) return "";
  const rowH = 22;
  const labelW = 220;
  const barW = 560;
  const width = labelW + barW + 160;
  const height = rows.length * rowH + 8;
  const max = Math.max(...rows.map((r) => (Number.isFinite(r.value) ? r.value : 0)), 1e-9);
  const bars = rows
    .map((r, k) => {
      const y = 4 + k * rowH;
      const w = Math.max(0, ((Number.isFinite(r.value) ? r.value : 0) / max) * barW);
      const label = r.label.length > 30 ? `${r.label.slice(0, 29)}…` : r.label;
      return `<text x="${labelW - 6}" y="${y + 15}" text-anchor="end" font-size="12">${escapeHtml(label)}</text><rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${r.bad ? "#c0392b" : "#4a6fa5"}"/><text x="${(labelW + w + 6).toFixed(1)}" y="${y + 15}" font-size="12" fill="#5c6773">${escapeHtml(r.text)}</text>`;
    })
    .join("");
  return `<svg class="chart" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${bars}</svg>`;
}

function samplesSection(
  flagged: readonly FlaggedSampleJson[],
  previews: ReadonlyMap<number, SamplePreview>,
  maxSamples: number,
): string {
  if (flagged.length === 0)
    return `<section><h2>Flagged samples</h2><p class="ok">No sample was flagged.</p></section>`;
  const shown = flagged.slice(0, maxSamples);
  const rows = shown
    .map((s) => {
      const detectors =
        s.detectors.length > 0
          ? s.detectors.map((d) => `<span class="pill bad">${escapeHtml(d)}</span>`).join("")
          : `<span class="pill">combined evidence</span>`;
      return `<tr><td class="num">${s.risk.toFixed(3)}</td><td><code>${escapeHtml(s.id)}</code><div class="muted">${escapeHtml(s.digest.slice(0, 16))}…</div></td><td>${escapeHtml(s.label ?? "(none)")}${s.source !== null ? `<div class="muted">from ${escapeHtml(s.source)}</div>` : ""}</td><td>${detectors}<div class="muted">combined ${s.combinedEvidence.toFixed(2)}</div></td><td>${preview(previews.get(s.index))}</td><td>${evidenceBlock(s.evidence)}</td></tr>`;
    })
    .join("\n");
  const more =
    flagged.length > shown.length
      ? `<p class="muted">${fmt(flagged.length - shown.length)} more flagged samples are listed in report.json.</p>`
      : "";
  return `<section><h2>Flagged samples</h2><p class="muted">Highest risk first. Risk &gt; 0.5 means flagged; above that it combines the flagging detectors' reliability with the combined evidence of every detector.</p>
<table><thead><tr><th class="num">risk</th><th>sample</th><th>label</th><th>detectors</th><th>content</th><th>evidence</th></tr></thead><tbody>${rows}</tbody></table>${more}</section>`;
}

function preview(p: SamplePreview | undefined): string {
  if (p === undefined) return `<span class="muted">—</span>`;
  if (p.kind === "image")
    return `<img class="thumb" alt="sample thumbnail" width="${p.width}" height="${p.height}" src="data:image/png;base64,${p.pngBase64}">`;
  let html = "";
  let at = 0;
  for (const h of [...p.highlights].sort((a, b) => a.start - b.start)) {
    if (h.start < at) continue;
    html += escapeHtml(p.excerpt.slice(at, h.start));
    html += `<mark title="${escapeHtml(h.label)}">${escapeHtml(p.excerpt.slice(h.start, h.end))}</mark>`;
    at = h.end;
  }
  html += escapeHtml(p.excerpt.slice(at));
  return `<pre class="excerpt">${p.truncatedBefore ? "…" : ""}${html}${p.truncatedAfter ? "…" : ""}</pre>`;
}

function evidenceBlock(evidence: Record<string, JsonValue>): string {
  const entries = Object.entries(evidence);
  if (entries.length === 0) return `<span class="muted">rank evidence only</span>`;
  return entries
    .map(
      ([detector, value]) =>
        `<details><summary>${escapeHtml(detector)}</summary><pre>${escapeHtml(JSON.stringify(value, null, 1))}</pre></details>`,
    )
    .join("");
}

function detectorsSection(r: ScanReportJson): string {
  const rows = r.detectors
    .map((x) => {
      if (x.status === "skipped")
        return `<tr><td>${escapeHtml(x.name)}</td><td class="muted">skipped</td><td colspan="3" class="muted">${escapeHtml(x.reason ?? "")}</td></tr>`;
      const warn = (x.warnings ?? []).map((w) => `<div class="bad">${escapeHtml(w)}</div>`).join("");
      const role =
        x.decisive === false ? `<div class="bad">${escapeHtml(x.reason ?? "evidence only")}</div>` : "";
      return `<tr><td>${escapeHtml(x.name)} <span class="muted">${escapeHtml(x.version ?? "")}</span></td><td class="num">${fmt(x.flagged ?? 0)}</td><td class="num">${(x.seconds ?? 0).toFixed(2)} s</td><td>${escapeHtml(x.threshold?.method ?? "")}${role}${warn}</td><td><details><summary>summary</summary><pre>${escapeHtml(JSON.stringify(x.summary ?? {}, null, 1))}</pre></details></td></tr>`;
    })
    .join("\n");
  return `<section><h2>Detectors</h2>
<p class="muted">${escapeHtml(r.ensemble.method)}.</p>
<table><thead><tr><th>detector</th><th class="num">flagged</th><th class="num">time</th><th>threshold</th><th>details</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

function exclusionCheckSection(r: ScanReportJson): string {
  const x = r.exclusionCheck;
  if (x === null) return "";
  if (x.groups.length === 0)
    return `<section><h2>Exclusion check</h2><p class="muted">Model: ${escapeHtml(x.from)}.</p></section>`;
  const rows = x.groups
    .map(
      (g) =>
        `<tr><td>${escapeHtml(g.detector)}</td><td>${escapeHtml(g.class)}</td><td class="num">${fmt(g.samples)}</td><td class="num">${g.meanOwnProbability.toFixed(3)}</td><td>${escapeHtml(g.mostPredicted.class)} (${pct(g.mostPredicted.share)})</td><td class="${g.verdict.startsWith("poison") ? "bad" : "ok"}">${escapeHtml(g.verdict)}</td></tr>`,
    )
    .join("\n");
  return `<section><h2>Exclusion check</h2>
<p class="muted">A spectral detector flags a group of a class for being separate, which a natural sub-population also is. A model trained without the ${fmt(x.excluded)} flagged samples (${escapeHtml(x.from)}) says what they are: poison no longer looks like its label (own-label probability below chance, ${(x.groups[0]?.chance ?? 0).toFixed(3)}), a sub-population still does and is dismissed.</p>
<table><thead><tr><th>detector</th><th>class</th><th class="num">samples</th><th class="num">own-label probability</th><th>most predicted</th><th>verdict</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

function representationSection(r: ScanReportJson): string {
  const rep = r.representation;
  if (rep === null || typeof rep !== "object" || Array.isArray(rep)) return "";
  const probs = rep.probabilities as Record<string, JsonValue> | null;
  const feats = rep.features as Record<string, JsonValue> | null;
  const lines = [
    probs !== null && probs !== undefined
      ? `Class probabilities: ${escapeHtml(probs.from)}${typeof probs.accuracy === "number" ? ` — ${probs.inSample === true ? "accuracy on these samples (in-sample: the model trained on them)" : "held-out accuracy"} ${pct(probs.accuracy)}` : ""}${typeof probs.probeAccuracy === "number" ? `; the probe's held-out accuracy ${pct(probs.probeAccuracy)}` : ""}${probs.matchedBy !== undefined ? ` (matched by ${escapeHtml(probs.matchedBy)})` : ""}.`
      : "Class probabilities: none.",
    feats !== null && feats !== undefined
      ? `Features: ${escapeHtml(feats.from)}, ${escapeHtml(feats.dims)} dimensions.`
      : "Features: none (feature-space detectors need a model's penultimate-layer features: --features).",
  ];
  return `<section><h2>Representation</h2>${lines.map((l) => `<p>${l}</p>`).join("")}</section>`;
}

function warningsSection(warnings: readonly string[]): string {
  if (warnings.length === 0) return "";
  return `<section><h2>Warnings</h2><ul>${warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join("")}</ul></section>`;
}

function timingsSection(r: ScanReportJson): string {
  const rows = r.timings
    .map((t) => `<tr><td>${escapeHtml(t.stage)}</td><td class="num">${t.seconds.toFixed(2)} s</td></tr>`)
    .join("");
  const ledger =
    r.ledger !== null && typeof r.ledger === "object" && !Array.isArray(r.ledger)
      ? `<p>Ledger: ${escapeHtml(r.ledger.findings)} findings recorded in <code>${escapeHtml(r.ledger.location)}</code>.</p>`
      : `<p class="muted">No ledger: findings were not recorded (pass --ledger).</p>`;
  return `<section><h2>Run</h2>${ledger}<table><thead><tr><th>stage</th><th class="num">time</th></tr></thead><tbody>${rows}<tr><th>total</th><th class="num">${r.seconds.toFixed(2)} s</th></tr></tbody></table></section>`;
}

function str(v: JsonValue | undefined): string {
  return typeof v === "string" ? v : JSON.stringify(v ?? null);
}

function records(v: JsonValue): Record<string, JsonValue>[] {
  return (Array.isArray(v) ? v : []).filter(
    (x): x is Record<string, JsonValue> => x !== null && typeof x === "object" && !Array.isArray(x),
  );
}

function byDetector(v: JsonValue | undefined): string {
  if (v === null || v === undefined || typeof v !== "object" || Array.isArray(v)) return "";
  return Object.entries(v)
    .filter(([, k]) => typeof k === "number" && k > 0)
    .map(([d, k]) => `<span class="pill">${escapeHtml(d)} ${escapeHtml(k)}</span>`)
    .join("");
}

function fmt(n: number): string {
  return Number.isFinite(n) ? n.toLocaleString("en-US") : "—";
}

function pct(x: number): string {
  if (!Number.isFinite(x)) return "—";
  return `${(100 * x).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;
}

function num(v: JsonValue | undefined, digits: number): string {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";
}

function sci(p: number): string {
  if (!Number.isFinite(p)) return "—";
  if (p === 0) return "< 1e-300";
  return p < 1e-3 ? p.toExponential(1) : p.toFixed(3);
}
