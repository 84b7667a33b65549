// report.html for `antidote audit`: the audit for people, rendered from report.json alone. One
// self-contained file — inline CSS, hand-written inline SVG charts, the reversed triggers as PNG
// data URIs, no script and no external asset — so it can be archived with the model or mailed.
// Every string that came from the user or the model (paths, class names, output names, input
// ids, warnings) goes through `escapeHtml`.
import { encodePng } from "../data/image-codec.js";
import { cards, escapeHtml, htmlPage, nextStepsSection } from "../report/html.js";
import type { AuditLabelJson, AuditReportJson } from "./report-json.js";

export function renderAuditHtml(report: AuditReportJson): string {
  const v = report.verdict;
  const sections = [
    header(report),
    verdictSection(report),
    cards([
      ["labels audited", String(report.labels.length)],
      ["suspected", String(v.suspected.length)],
      ["references", String(report.references.length)],
      ["clean images", fmt(report.data.used)],
      ["time", `${report.seconds.toFixed(1)} s`],
    ]),
    nextStepsSection("Next steps", report.nextSteps),
    normsSection(report),
    triggersSection(report),
    stripSection(report),
    modelsSection(report),
    timingsSection(report),
  ];
  return htmlPage(`Antidote audit — ${report.model.path}`, CSS, sections);
}

const CSS = `
:root { --fg: #1d232b; --muted: #5c6773; --line: #d9dee4; --bg: #f6f7f9; --bad: #c0392b; --ok: #2e7d5b; --bar: #4a6fa5; --ref: #a9b4c2; }
.muted { color: var(--muted); } .bad { color: var(--bad); font-weight: 600; } .ok { color: var(--ok); font-weight: 600; }
.verdict { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--ok); border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
.verdict.bad { border-left-color: var(--bad); }
.verdict .title { font-size: 18px; font-weight: 700; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 130px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
tr.suspected td { background: #fdf1ef; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre.cmd { background: #1d232b; color: #f2f4f7; padding: 8px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 4px 0; }
img.trigger { width: 84px; height: 84px; image-rendering: pixelated; border: 1px solid var(--line); background: #000; }
.chart { background: #fff; border: 1px solid var(--line); margin: 6px 0 10px; max-width: 100%; height: auto; }
.legend span { display: inline-block; margin-right: 14px; } .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
`;

function header(r: AuditReportJson): string {
  const m = r.model;
  return `<header>
<h1>Antidote audit — ${escapeHtml(m.path)}</h1>
<div class="muted">model <code>${escapeHtml(m.digest)}</code> · opset ${m.opset} · input [${m.inputShape.join(", ")}] · ${m.numClasses} classes · output ${escapeHtml(m.outputName)}</div>
<div class="muted">clean images from ${escapeHtml(r.data.name)} (${escapeHtml(r.data.format)}): ${fmt(r.data.used)} of ${fmt(r.data.imagesRead)} read, ${fmt(r.data.labeled)} labeled · seed ${r.seed}</div>
<div class="muted">antidote ${escapeHtml(r.tool.version)} · ${escapeHtml(r.createdAt)} · report schema ${escapeHtml(r.schema)}/${r.schemaVersion}</div>
</header>`;
}

function verdictSection(r: AuditReportJson): string {
  const v = r.verdict;
  const title = v.backdoor
    ? `Backdoor suspected: ${v.suspected.map((s) => escapeHtml(labelName(s))).join(", ")}`
    : "No backdoor found";
  const detail = v.suspected
    .map(
      (s) =>
        `<li><b>${escapeHtml(labelName(s))}</b>: trigger norm ${num(s.l1, 1)}` +
        (s.ratio !== null ? `, ${num(s.ratio, 1)}× smaller than in every reference` : "") +
        `, MAD anomaly index ${s.anomalyIndex === null ? "∞" : num(s.anomalyIndex, 2)}, reversed trigger turns ${pct(s.asr)} of held-out clean images into it</li>`,
    )
    .join("");
  const rule =
    v.method === "reference"
      ? `Rule: a label is suspected when every reference needs a trigger at least ${v.thresholds.ratio}× larger (by ‖m‖₁) and the reversed trigger's held-out success rate is at least ${pct(v.thresholds.minAsr)}.`
      : `Rule: MAD anomaly index above ${v.thresholds.madThreshold} and held-out success rate at least ${pct(v.thresholds.minAsr)}.`;
  return `<section class="verdict${v.backdoor ? " bad" : ""}"><div class="title">${title}</div>
${detail === "" ? "" : `<ul>${detail}</ul>`}
<div class="muted">${escapeHtml(v.method === "reference" ? `Compared with ${r.references.length} reference model${r.references.length === 1 ? "" : "s"}.` : `${capitalise(v.note)}.`)} ${escapeHtml(rule)}</div></section>`;
}

/** Grouped vertical bars: per label, the model's ‖m‖₁ and each reference's. */
export function normsChart(labels: readonly AuditLabelJson[], references: number): string {
  if (labels.length === 0) return "";
  const series = 1 + references;
  const barW = Math.max(6, Math.min(22, Math.floor(60 / series)));
  const groupW = series * barW + 18;
  const left = 48;
  const top = 12;
  const plotH = 200;
  const width = left + labels.length * groupW + 12;
  const height = top + plotH + 56;
  const values = labels.flatMap((l) => [l.l1, ...l.references.map((x) => x.l1)]).filter(Number.isFinite);
  const max = Math.max(1e-9, ...values);
  const y = (v: number) => top + plotH - (Math.max(0, v) / max) * plotH;
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const v = f * max;
      return `<line x1="${left}" x2="${width - 8}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eef1f4"/><text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#5c6773">${v.toFixed(0)}</text>`;
    })
    .join("");
  const bars = labels
    .map((l, g) => {
      const x0 = left + g * groupW + 9;
      const rects = [l.l1, ...l.references.map((x) => x.l1)]
        .map((v, s) => {
          const h = Number.isFinite(v) ? top + plotH - y(v) : 0;
          const fill = s === 0 ? (l.suspected ? "#c0392b" : "#4a6fa5") : "#a9b4c2";
          const who = s === 0 ? "model" : `reference ${s}`;
          return `<rect x="${x0 + s * barW}" y="${(top + plotH - h).toFixed(1)}" width="${barW - 2}" height="${h.toFixed(1)}" fill="${fill}"><title>${escapeHtml(`${labelName(l)} — ${who}: ‖m‖₁ = ${Number.isFinite(v) ? v.toFixed(1) : "n/a"}`)}</title></rect>`;
        })
        .join("");
      const name = labelName(l);
      const short = name.length > 11 ? `${name.slice(0, 10)}…` : name;
      const cx = x0 + (series * barW) / 2;
      return `${rects}<text x="${cx.toFixed(1)}" y="${top + plotH + 14}" text-anchor="middle" font-size="11"${l.suspected ? ' fill="#c0392b" font-weight="700"' : ""}>${escapeHtml(short)}</text>`;
    })
    .join("");
  return `<svg class="chart" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${ticks}${bars}<text x="${left}" y="${height - 10}" font-size="11" fill="#5c6773">‖m‖₁ of the reversed trigger per label (smaller = easier to reach)</text></svg>`;
}

function normsSection(r: AuditReportJson): string {
  const legend =
    `<div class="legend"><span><i class="swatch" style="background:#4a6fa5"></i>this model</span>` +
    `<span><i class="swatch" style="background:#c0392b"></i>suspected label</span>` +
    r.references
      .map(
        (ref, i) =>
          `<span><i class="swatch" style="background:#a9b4c2"></i>reference ${i + 1}: ${escapeHtml(ref.path)}</span>`,
      )
      .join("") +
    `</div>`;
  return `<section><h2>Trigger size per label</h2><p class="muted">Neural Cleanse: for each label, the smallest mask (and its pattern) that turns clean images of the other labels into it. MAD median ${num(r.anomaly.median, 1)}, MAD ${num(r.anomaly.mad, 2)}.</p>${legend}${normsChart(r.labels, r.references.length)}</section>`;
}

function triggersSection(r: AuditReportJson): string {
  const [C, H, W] = r.inversion.imageShape;
  const refHeads = r.references.map((_, i) => `<th class="num">ref ${i + 1} ‖m‖₁</th>`).join("");
  const rows = r.labels
    .map((l) => {
      const mask = l.mask;
      const applied = l.pattern.map((p, i) => p * (mask[i % (H * W)] ?? 0));
      const refCells = l.references.map((x) => `<td class="num">${num(x.l1, 1)}</td>`).join("");
      return `<tr${l.suspected ? ' class="suspected"' : ""}><td>${l.suspected ? `<span class="bad">${escapeHtml(labelName(l))}</span>` : escapeHtml(labelName(l))}</td>
<td>${image(mask, 1, H, W, "mask")}</td><td>${image(l.pattern, C, H, W, "pattern")}</td><td>${image(applied, C, H, W, "mask ⊙ pattern")}</td>
<td class="num">${num(l.l1, 1)}</td>${refCells}<td class="num">${l.ratio === null ? "—" : num(l.ratio, 2)}</td><td class="num">${l.anomalyIndex === null ? "∞" : num(l.anomalyIndex, 2)}</td><td class="num">${pct(l.asr)}</td><td class="num">${l.steps}${l.reached ? "" : " (not reached)"}</td></tr>`;
    })
    .join("\n");
  return `<section><h2>Reversed triggers</h2>
<p class="muted">Mask (white = pixel replaced), pattern, and what the trigger stamps on an image. ASR: share of held-out clean images of other labels the reversed trigger turns into the label. ${fmt(r.inversion.samples.optimisation)} images optimised, ${fmt(r.inversion.samples.heldOut)} held out; "other label" from the ${r.inversion.labelSource === "dataset" ? "dataset's labels" : "model's predictions"}.</p>
<table><thead><tr><th>label</th><th>mask</th><th>pattern</th><th>mask ⊙ pattern</th><th class="num">‖m‖₁</th>${refHeads}<th class="num">ratio</th><th class="num">MAD index</th><th class="num">ASR</th><th class="num">steps</th></tr></thead>
<tbody>${rows}</tbody></table></section>`;
}

/** A C×H×W (or H×W) array in [0, 1] as a PNG data URI image; other channel counts show channel 0. */
function image(values: readonly number[], C: number, H: number, W: number, alt: string): string {
  const channels = C === 3 ? 3 : 1;
  const bytes = new Uint8Array(H * W * channels);
  for (let p = 0; p < H * W; p++)
    for (let c = 0; c < channels; c++) {
      const v = values[c * H * W + p] ?? 0;
      bytes[p * channels + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  const png = encodePng(bytes, H, W, channels).toString("base64");
  return `<img class="trigger" alt="${escapeHtml(alt)}" title="${escapeHtml(alt)}" src="data:image/png;base64,${png}">`;
}

function stripSection(r: AuditReportJson): string {
  const s = r.strip;
  if (s === null) return "";
  const inputs = s.inputs;
  const list =
    inputs === null
      ? ""
      : `<p>${escapeHtml(inputs.name)}: <b>${fmt(inputs.flagged)}</b> of ${fmt(inputs.count)} inputs flagged (${pct(inputs.flaggedRate)}).</p>` +
        (inputs.flaggedInputs.length === 0
          ? ""
          : `<table><thead><tr><th>input</th><th class="num">entropy (bits)</th></tr></thead><tbody>${inputs.flaggedInputs
              .slice(0, 100)
              .map((e) => `<tr><td>${escapeHtml(e.id)}</td><td class="num">${num(e.entropy, 3)}</td></tr>`)
              .join(
                "",
              )}</tbody></table>${inputs.flaggedInputs.length > 100 ? `<p class="muted">${inputs.flaggedInputs.length - 100} more in report.json.</p>` : ""}`);
  return `<section><h2>STRIP — input screening</h2>
<p class="muted">Each input is overlaid on ${s.perturbations} random clean images (${s.superimpose === "add" ? "min(1, x + x_clean)" : "0.5·x + 0.5·x_clean"}) and the model's mean prediction entropy is taken: a trigger keeps the prediction fixed, so triggered inputs have low entropy. Threshold ${num(s.threshold, 3)} bits = the ${pct(s.frr)} quantile of ${fmt(s.cleanInputs)} clean inputs (observed false-rejection rate ${pct(s.observedFrr)}).</p>
${histogramChart(s.histogram, s.threshold)}${list}</section>`;
}

/** Entropy histograms (clean, and the checked inputs when given) with the threshold as a line. */
export function histogramChart(
  h: { edges: number[]; clean: number[]; inputs: number[] | null },
  threshold: number,
): string {
  const bins = h.clean.length;
  if (bins === 0) return "";
  const left = 40;
  const top = 10;
  const plotW = 600;
  const plotH = 160;
  const width = left + plotW + 20;
  const height = top + plotH + 40;
  const share = (counts: number[]) => {
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    return counts.map((c) => c / total);
  };
  const clean = share(h.clean);
  const inputs = h.inputs === null ? null : share(h.inputs);
  const max = Math.max(1e-9, ...clean, ...(inputs ?? []));
  const binW = plotW / bins;
  const lo = h.edges[0] ?? 0;
  const hi = h.edges[h.edges.length - 1] ?? 1;
  const xOf = (v: number) => left + ((v - lo) / (hi - lo || 1)) * plotW;
  const bars = (values: number[], fill: string, offset: number, w: number) =>
    values
      .map((v, i) => {
        const bh = (v / max) * plotH;
        return `<rect x="${(left + i * binW + offset).toFixed(1)}" y="${(top + plotH - bh).toFixed(1)}" width="${w.toFixed(1)}" height="${bh.toFixed(1)}" fill="${fill}"/>`;
      })
      .join("");
  const w = inputs === null ? binW - 1 : (binW - 1) / 2;
  const tx = xOf(threshold);
  return `<svg class="chart" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${bars(clean, "#4a6fa5", 0, w)}${inputs === null ? "" : bars(inputs, "#e08e0b", w, w)}<line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#c0392b" stroke-width="2"/><text x="${(tx + 4).toFixed(1)}" y="${top + 12}" font-size="11" fill="#c0392b">threshold</text><text x="${left}" y="${top + plotH + 16}" font-size="11" fill="#5c6773">${lo.toFixed(2)}</text><text x="${left + plotW}" y="${top + plotH + 16}" font-size="11" text-anchor="end" fill="#5c6773">${hi.toFixed(2)} bits</text><text x="${left}" y="${height - 6}" font-size="11" fill="#5c6773">share of inputs per entropy bin: blue clean held-out${inputs === null ? "" : ", orange checked inputs"}</text></svg>`;
}

function modelsSection(r: AuditReportJson): string {
  const rows = [r.model, ...r.references]
    .map(
      (m, i) =>
        `<tr><td>${i === 0 ? "audited" : `reference ${i}`}</td><td>${escapeHtml(m.path)}<br><code class="muted">${escapeHtml(m.digest)}</code></td><td>${m.opset}</td><td>${escapeHtml(m.ops.join(", "))}</td><td class="num">${m.translationMaxAbsDiff === null ? "—" : m.translationMaxAbsDiff.toExponential(1)}</td><td>${m.warnings.map((w) => escapeHtml(w)).join("<br>")}</td></tr>`,
    )
    .join("");
  return `<section><h2>Models</h2><p class="muted">Gradients are taken through a TF.js translation of each ONNX graph, checked against ONNX Runtime on clean images before the audit (largest absolute difference shown).</p>
<table><thead><tr><th></th><th>file</th><th>opset</th><th>operators</th><th class="num">max |ORT − TF.js|</th><th>warnings</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

function timingsSection(r: AuditReportJson): string {
  const rows = r.timings
    .map((t) => `<tr><td>${escapeHtml(t.stage)}</td><td class="num">${t.seconds.toFixed(2)} s</td></tr>`)
    .join("");
  return `<section><h2>Timings</h2><table><tbody>${rows}<tr><td><b>total</b></td><td class="num"><b>${r.seconds.toFixed(1)} s</b></td></tr></tbody></table></section>`;
}

function labelName(l: { label: number; className: string | null }): string {
  return l.className ?? `class ${l.label}`;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function num(x: number | null, digits: number): string {
  return x === null || !Number.isFinite(x) ? "—" : x.toFixed(digits);
}
