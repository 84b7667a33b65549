// A scan job's report, drawn from its report.json: the ensemble's verdict, each detector's
// result and evidence, flagged samples per class and per source, and the flagged samples
// themselves with their content — image thumbnails, or the text with the suspect tokens
// highlighted. report.json carries no content; the previews come from the job's
// previews.json, taken only as PNG data URLs and as text with the spans to mark — never
// inserted as HTML.
import { useState } from "preact/hooks";
import { get, post } from "../api";
import { useAuth } from "../auth";
import { count, pct, short } from "../format";
import { useLoad } from "../hooks";
import type { ScanReport } from "../types";
import { BarChart } from "./Chart";
import { ReasonDialog } from "./ReasonDialog";
import { Card, Pill, Status, TableWrap } from "./ui";

export type Preview =
  { kind: "image"; src: string } | { kind: "text"; parts: { text: string; mark?: string }[] };

interface Group {
  name: string;
  samples: number;
  flagged: number;
  rate?: number;
  anomalous?: boolean;
}

/** previews.json of a scan job (scan/previews.ts `PreviewsJson`), as far as it is read here. */
interface PreviewsFile {
  previews?: {
    digest?: unknown;
    preview?: {
      kind?: unknown;
      src?: unknown;
      excerpt?: unknown;
      truncatedBefore?: unknown;
      truncatedAfter?: unknown;
      highlights?: { start?: unknown; end?: unknown; label?: unknown }[];
    };
  }[];
}

/**
 * Sample digest → its preview, from the previews.json of the same scan. Nothing in it is
 * trusted: an image is taken only as a PNG data URL, text is split at the highlighted spans
 * and rendered as text (never as HTML), and anything else is left out.
 */
export function previewsFromJson(file: PreviewsFile): Map<string, Preview> {
  const out = new Map<string, Preview>();
  for (const entry of Array.isArray(file.previews) ? file.previews : []) {
    const p = entry.preview;
    if (typeof entry.digest !== "string" || p === undefined) continue;
    if (p.kind === "image" && typeof p.src === "string" && p.src.startsWith("data:image/png;base64,"))
      out.set(entry.digest, { kind: "image", src: p.src });
    else if (p.kind === "text" && typeof p.excerpt === "string")
      out.set(entry.digest, { kind: "text", parts: textParts(p.excerpt, p) });
  }
  return out;
}

// The excerpt cut at its highlights (sorted, overlapping ones skipped, as report.html does).
function textParts(
  excerpt: string,
  p: NonNullable<NonNullable<PreviewsFile["previews"]>[number]["preview"]>,
): { text: string; mark?: string }[] {
  const spans = (Array.isArray(p.highlights) ? p.highlights : [])
    .filter(
      (h): h is { start: number; end: number; label: string } =>
        Number.isInteger(h.start) &&
        Number.isInteger(h.end) &&
        typeof h.label === "string" &&
        (h.start as number) >= 0 &&
        (h.end as number) <= excerpt.length &&
        (h.start as number) < (h.end as number),
    )
    .sort((a, b) => a.start - b.start);
  const parts: { text: string; mark?: string }[] = [];
  if (p.truncatedBefore === true) parts.push({ text: "…" });
  let at = 0;
  for (const h of spans) {
    if (h.start < at) continue;
    parts.push({ text: excerpt.slice(at, h.start) });
    parts.push({ text: excerpt.slice(h.start, h.end), mark: h.label });
    at = h.end;
  }
  parts.push({ text: excerpt.slice(at) });
  if (p.truncatedAfter === true) parts.push({ text: "…" });
  return parts.filter((part) => part.text !== "");
}

/** The previews of scan job `jobId` (none for a job without previews.json). */
export function loadPreviews(jobId: string): Promise<Map<string, Preview>> {
  return get<PreviewsFile>(`/jobs/${jobId}/artifacts/previews.json`).then(
    previewsFromJson,
    () => new Map<string, Preview>(),
  );
}

export function PreviewView({ preview }: { preview: Preview | undefined }) {
  if (preview === undefined) return <span class="muted">—</span>;
  if (preview.kind === "image")
    return <img class="thumb" src={preview.src} alt="sample thumbnail" width={56} height={56} />;
  return (
    <pre class="excerpt">
      {preview.parts.map((p, i) =>
        p.mark === undefined ? (
          p.text
        ) : (
          <mark key={i} title={p.mark}>
            {p.text}
          </mark>
        ),
      )}
    </pre>
  );
}

export function ScanReportView({ jobId, onQuarantined }: { jobId: string; onQuarantined?: () => void }) {
  const { can } = useAuth();
  const report = useLoad(() => get<ScanReport>(`/jobs/${jobId}/artifacts/report.json`), [jobId]);
  const previews = useLoad(() => loadPreviews(jobId), [jobId]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [dialog, setDialog] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const toggle = (digest: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(digest)) next.delete(digest);
      else next.add(digest);
      return next;
    });
  return (
    <Status loaded={report}>
      {(r) => {
        const classes = Array.isArray(r.classes) ? (r.classes as Group[]) : [];
        const sources = Array.isArray(r.sources) ? (r.sources as Group[]) : [];
        const shown = r.flagged.slice(0, 200);
        return (
          <div class="report" data-testid="scan-report">
            <div class="stats">
              <div class="stat bad">
                <div class="stat-value" data-testid="flagged-count">
                  {count(r.ensemble.flagged)}
                </div>
                <div class="stat-label">
                  flagged of {count(r.dataset.samples)} ({pct(r.ensemble.flaggedRate)})
                </div>
              </div>
              <div class="stat">
                <div class="stat-value">{r.detectors.filter((d) => d.status === "ran").length}</div>
                <div class="stat-label">detectors ran</div>
              </div>
            </div>
            <div class="grid">
              {classes.length > 0 && (
                <Card title="Per class">
                  <BarChart
                    label="Samples and flagged samples per class"
                    categories={classes.map((c) => c.name)}
                    values={classes.map((c) => c.samples)}
                    highlight={classes.map((c) => c.flagged)}
                  />
                </Card>
              )}
              {sources.length > 0 && (
                <Card title="Per source">
                  <BarChart
                    label="Samples and flagged samples per source"
                    categories={sources.map((c) => c.name)}
                    values={sources.map((c) => c.samples)}
                    highlight={sources.map((c) => c.flagged)}
                  />
                  <ul class="plain">
                    {sources
                      .filter((s) => s.anomalous === true)
                      .map((s) => (
                        <li key={s.name}>
                          <Pill tone="bad">anomalous</Pill>{" "}
                          <a href={`/sources/${encodeURIComponent(s.name)}`}>{s.name}</a>: {count(s.flagged)}{" "}
                          of {count(s.samples)} flagged
                        </li>
                      ))}
                  </ul>
                </Card>
              )}
            </div>
            <Card title="Detectors">
              <TableWrap label="Detectors">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">detector</th>
                      <th scope="col">status</th>
                      <th scope="col" class="num">
                        flagged
                      </th>
                      <th scope="col">threshold</th>
                      <th scope="col">evidence</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.detectors.map((d) => (
                      <tr key={d.name}>
                        <td>{d.name}</td>
                        <td>{d.status === "ran" ? <Pill tone="ok">ran</Pill> : <Pill>skipped</Pill>}</td>
                        <td class="num">{d.flagged === undefined ? "—" : count(d.flagged)}</td>
                        <td>
                          {d.threshold === undefined
                            ? (d.reason ?? "")
                            : `${d.threshold.value === null ? "—" : d.threshold.value.toPrecision(3)} (${d.threshold.method})`}
                        </td>
                        <td>
                          {d.summary !== undefined && (
                            <details>
                              <summary>summary</summary>
                              <pre>{JSON.stringify(d.summary, null, 1)}</pre>
                            </details>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            </Card>
            <Card title="Flagged samples">
              {notice !== null && (
                <p class="notice" role="status">
                  {notice}
                </p>
              )}
              {can("decide") && (
                <div class="actions">
                  <button
                    type="button"
                    class="danger"
                    disabled={selected.size === 0}
                    onClick={() => setDialog(true)}
                  >
                    Quarantine {selected.size} selected
                  </button>
                </div>
              )}
              <TableWrap label="Flagged samples">
                <table data-testid="flagged-samples">
                  <thead>
                    <tr>
                      {can("decide") && (
                        <th scope="col">
                          <span class="sr-only">select</span>
                        </th>
                      )}
                      <th scope="col" class="num">
                        risk
                      </th>
                      <th scope="col">sample</th>
                      <th scope="col">label</th>
                      <th scope="col">source</th>
                      <th scope="col">detectors</th>
                      <th scope="col">content</th>
                    </tr>
                  </thead>
                  <tbody>
                    {shown.map((s) => (
                      <tr key={s.digest}>
                        {can("decide") && (
                          <td>
                            <input
                              type="checkbox"
                              aria-label={`select ${s.id}`}
                              checked={selected.has(s.digest)}
                              onChange={() => toggle(s.digest)}
                            />
                          </td>
                        )}
                        <td class="num">{s.risk.toFixed(3)}</td>
                        <td>
                          <a href={`/samples/${s.digest}?job=${jobId}`}>{short(s.id, 28)}</a>
                        </td>
                        <td>{s.label ?? "—"}</td>
                        <td>{s.source ?? "—"}</td>
                        <td>
                          {s.detectors.map((d) => (
                            <Pill key={d} tone="bad">
                              {d}
                            </Pill>
                          ))}
                        </td>
                        <td>
                          <PreviewView preview={previews.data?.get(s.digest)} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
              {r.flagged.length > shown.length && (
                <p class="muted">{count(r.flagged.length - shown.length)} more in report.json.</p>
              )}
              <ReasonDialog
                open={dialog}
                title={`Quarantine ${selected.size} samples`}
                confirm="Quarantine"
                onCancel={() => setDialog(false)}
                onConfirm={async (reason) => {
                  const result = await post<{ samples: number }>("/decisions", {
                    action: "quarantine",
                    samples: [...selected],
                    reason,
                  });
                  setDialog(false);
                  setSelected(new Set());
                  setNotice(`Quarantined ${count(result.samples)} samples. Recorded in the ledger.`);
                  onQuarantined?.();
                }}
              />
            </Card>
          </div>
        );
      }}
    </Status>
  );
}
