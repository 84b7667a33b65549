// A model: what it was trained on, what it was fine-tuned from (and what was fine-tuned from
// it), its audits — the verdict, each label's reversed trigger drawn as an image, trigger
// norms against the reference models', STRIP's calibration — and its AI-BOM.
import { useEffect, useRef, useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { download, get, saveBlob } from "../api";
import { BarChart } from "../components/Chart";
import { Card, ErrorBox, Pill, Status, TableWrap } from "../components/ui";
import { short, when } from "../format";
import { useLoad } from "../hooks";
import type { AuditLabel, AuditReportJson, Job, Model, ModelLineage, ModelReputation, Page } from "../types";

export function ModelPage() {
  const { params } = useRoute();
  const digest = params.digest ?? "";
  const model = useLoad(() => get<Model>(`/models/${digest}`), [digest]);
  const lineage = useLoad(() => get<ModelLineage>(`/models/${digest}/lineage`), [digest]);
  const reputations = useLoad(() => get<ModelReputation[]>("/model-reputations"), []);
  const audits = useLoad(
    () =>
      get<Page<Job>>("/jobs", { kind: "audit", limit: 200 }).then((p) =>
        p.items.filter((j) => (j.result as { model?: string } | null)?.model === model.data?.digest),
      ),
    [model.data?.digest],
  );
  const [bomError, setBomError] = useState<Error | null>(null);
  const bom = async () => {
    try {
      saveBlob(await download(`/models/${digest}/bom`), `${model.data?.name ?? digest}.cdx.json`);
    } catch (e) {
      setBomError(e as Error);
    }
  };
  const latest = (audits.data ?? []).find((j) => j.state === "done");
  return (
    <Status loaded={model}>
      {(m) => (
        <>
          <h1>
            Model {m.name} <span class="mono muted">{short(m.digest, 12)}</span>
          </h1>
          <div class="actions">
            <button type="button" onClick={() => void bom()}>
              Download AI-BOM (CycloneDX)
            </button>
          </div>
          {bomError !== null && <ErrorBox error={bomError} />}
          <div class="grid">
            <Card title="Lineage">
              <dl class="facts">
                <dt>trained on</dt>
                <dd>
                  {m.trainedOn.map((v) => (
                    <div key={v}>
                      <a href={`/versions/${encodeURIComponent(v)}`}>{short(v, 40)}</a>
                    </div>
                  ))}
                </dd>
                <dt>base model</dt>
                <dd>
                  {m.baseModel === null ? (
                    "none"
                  ) : (
                    <a href={`/models/${m.baseModel}`}>{short(m.baseModel, 16)}</a>
                  )}
                </dd>
                <dt>built on it</dt>
                <dd data-testid="descendants">
                  {(lineage.data?.descendants ?? []).length === 0
                    ? "none"
                    : (lineage.data?.descendants ?? []).map((x) => (
                        <div key={x.digest}>
                          <a href={`/models/${x.digest}`}>{x.name}</a>
                          {x.depth > 1 ? (
                            <span class="muted"> (fine-tune of a fine-tune, depth {x.depth})</span>
                          ) : null}{" "}
                          <Pill tone={x.status === "suspended" ? "warn" : "ok"}>{x.status}</Pill>
                        </div>
                      ))}
                </dd>
                <dt>reputation</dt>
                <dd data-testid="reputation">
                  <Reputation entry={(reputations.data ?? []).find((r) => r.digest === m.digest)} />
                </dd>
                <dt>format</dt>
                <dd>{m.format}</dd>
                <dt>registered</dt>
                <dd>{when(m.registeredAt)}</dd>
              </dl>
            </Card>
            <Card title="Audits">
              <Status loaded={audits}>
                {(list) =>
                  list.length === 0 ? (
                    <p class="muted">
                      Not audited. <a href="/jobs">Start an audit</a> with the model file.
                    </p>
                  ) : (
                    <ul class="plain">
                      {list.map((j) => (
                        <li key={j.jobId}>
                          <a href={`/jobs/${j.jobId}`}>{j.jobId}</a> <Pill>{j.state}</Pill>{" "}
                          {when(j.createdAt)}
                        </li>
                      ))}
                    </ul>
                  )
                }
              </Status>
            </Card>
          </div>
          {latest !== undefined && <AuditReportView jobId={latest.jobId} />}
        </>
      )}
    </Status>
  );
}

// The foundation-model reputation list's word on this model, if any (`antidote model trust`).
function Reputation({ entry }: { entry: ModelReputation | undefined }) {
  if (entry === undefined) return <span class="muted">not listed</span>;
  return (
    <>
      <Pill tone={entry.verdict === "distrusted" ? "bad" : "ok"}>{entry.verdict}</Pill> {entry.reason}
      <span class="muted">
        {" "}
        — {entry.actor}, {when(entry.at)}
        {entry.publisher === null ? "" : `, publisher key ${short(entry.publisher, 12)} (signature verified)`}
      </span>
    </>
  );
}

export function AuditReportView({ jobId }: { jobId: string }) {
  const report = useLoad(() => get<AuditReportJson>(`/jobs/${jobId}/artifacts/report.json`), [jobId]);
  return (
    <Status loaded={report}>
      {(r) => {
        const hasRefs = r.labels.some((l) => l.referenceL1 !== null);
        const names = r.labels.map((l) => l.className ?? String(l.label));
        return (
          <div data-testid="audit-report">
            <Card title="Verdict">
              <p>
                {r.verdict.backdoor ? (
                  <Pill tone="bad">backdoor suspected</Pill>
                ) : (
                  <Pill tone="ok">no backdoor found</Pill>
                )}{" "}
                ({r.verdict.method}) {r.verdict.note}
              </p>
              {r.verdict.suspected.length > 0 && (
                <ul class="plain">
                  {r.verdict.suspected.map((s) => (
                    <li key={s.label}>
                      label <strong>{s.className ?? s.label}</strong>: trigger norm {s.l1.toFixed(1)}, attack
                      success {(s.asr * 100).toFixed(0)} %
                      {s.ratio !== null ? `, ${s.ratio.toFixed(1)}× smaller than the references'` : ""}
                    </li>
                  ))}
                </ul>
              )}
            </Card>
            <div class="grid">
              <Card title="Trigger norm per label">
                <BarChart
                  label={
                    hasRefs
                      ? "Reversed-trigger mask norm per label, against the smallest reference norm"
                      : "Reversed-trigger mask norm per label"
                  }
                  categories={names}
                  values={hasRefs ? r.labels.map((l) => l.referenceL1 ?? 0) : r.labels.map((l) => l.l1)}
                  {...(hasRefs ? { highlight: r.labels.map((l) => l.l1) } : {})}
                  names={hasRefs ? ["references", "this model"] : ["mask norm", ""]}
                />
                {hasRefs && (
                  <p class="muted">
                    Blue: the references' norm; red: this model's. A much smaller red bar is a trigger that is
                    easy to find: a backdoor.
                  </p>
                )}
              </Card>
              {r.strip !== null && (
                <Card title="STRIP calibration">
                  <p>
                    Threshold {r.strip.threshold.toFixed(3)} bits at a false-rejection rate of{" "}
                    {(r.strip.frr * 100).toFixed(1)} % (observed {(r.strip.observedFrr * 100).toFixed(1)} %).
                  </p>
                  <BarChart
                    label="Entropy of clean inputs under superimposition (bits)"
                    categories={r.strip.histogram.clean.map((_, i) =>
                      (r.strip?.histogram.edges[i] ?? 0).toFixed(2),
                    )}
                    values={r.strip.histogram.clean}
                    {...(r.strip.histogram.inputs !== null ? { highlight: r.strip.histogram.inputs } : {})}
                    names={["clean inputs", "checked inputs"]}
                  />
                </Card>
              )}
            </div>
            <Card title="Reversed triggers">
              <TableWrap label="Reversed triggers per label">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">label</th>
                      <th scope="col">trigger</th>
                      <th scope="col" class="num">
                        mask norm
                      </th>
                      <th scope="col" class="num">
                        reference norm
                      </th>
                      <th scope="col" class="num">
                        attack success
                      </th>
                      <th scope="col" class="num">
                        anomaly index
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.labels.map((l) => (
                      <tr key={l.label} class={l.suspected ? "suspect" : ""}>
                        <td>
                          {l.className ?? l.label} {l.suspected && <Pill tone="bad">suspected</Pill>}
                        </td>
                        <td>
                          <TriggerImage label={l} shape={r.inversion.imageShape} />
                        </td>
                        <td class="num">{l.l1.toFixed(1)}</td>
                        <td class="num">{l.referenceL1 === null ? "—" : l.referenceL1.toFixed(1)}</td>
                        <td class="num">{(l.asr * 100).toFixed(0)} %</td>
                        <td class="num">{l.anomalyIndex === null ? "∞" : l.anomalyIndex.toFixed(2)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            </Card>
          </div>
        );
      }}
    </Status>
  );
}

/** mask × pattern on black, drawn to a canvas and shown as an <img> (with alt text). */
function TriggerImage({ label, shape }: { label: AuditLabel; shape: [number, number, number] }) {
  const [src, setSrc] = useState<string | null>(null);
  const canvas = useRef<HTMLCanvasElement | null>(null);
  useEffect(() => {
    const [c, h, w] = shape;
    canvas.current ??= document.createElement("canvas");
    const el = canvas.current;
    el.width = w;
    el.height = h;
    const ctx = el.getContext("2d");
    if (ctx === null) return;
    const img = ctx.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const m = label.mask[i] ?? 0;
      for (let k = 0; k < 3; k++) {
        const p = label.pattern[(c === 1 ? 0 : k) * h * w + i] ?? 0;
        img.data[i * 4 + k] = Math.round(255 * m * p);
      }
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    setSrc(el.toDataURL("image/png"));
  }, [label, shape]);
  return src === null ? null : (
    <img
      class="thumb pixel"
      src={src}
      width={56}
      height={56}
      alt={`reversed trigger for ${label.className ?? label.label}`}
    />
  );
}
