// One source: its keys, deliveries over time, samples (a page at a time), flag rate per scan,
// annotators, and its blast radius as a graph — with the two actions a compromised source
// calls for: quarantine it, and export a clean version without it. Both ask for a reason.
import { useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { get, post } from "../api";
import { useAuth } from "../auth";
import { LineChart } from "../components/Chart";
import { BlastRadiusGraph, hrefOf } from "../components/Graph";
import { ReasonDialog } from "../components/ReasonDialog";
import { Card, Pager, Pill, Status, TableWrap } from "../components/ui";
import { count, pct, short, when } from "../format";
import { useCursor, useLoad } from "../hooks";
import type { BlastRadius, Delivery, Job, Page, SampleSummary, Source, SourceRiskDetail } from "../types";

export function SourcePage() {
  const { params } = useRoute();
  const name = params.name ?? "";
  const { can } = useAuth();
  const source = useLoad(() => get<Source>(`/sources/${encodeURIComponent(name)}`), [name]);
  const risk = useLoad(() => get<SourceRiskDetail>(`/sources/${encodeURIComponent(name)}/risk`), [name]);
  const graph = useLoad(() => get<BlastRadius>(`/sources/${encodeURIComponent(name)}/blast-radius`), [name]);
  const deliveries = useLoad(() => get<Page<Delivery>>("/deliveries", { source: name, limit: 1000 }), [name]);
  const [dialog, setDialog] = useState<"quarantine" | "release" | "export" | null>(null);
  const [exportVersion, setExportVersion] = useState<string>("");
  const [notice, setNotice] = useState<{ text: string; href?: string } | null>(null);

  const refresh = () => {
    risk.reload();
    graph.reload();
  };
  const decide = (action: "quarantine" | "release") => async (reason: string) => {
    await post("/decisions", { action, sources: [name], reason });
    setDialog(null);
    setNotice({
      text: `${action === "quarantine" ? "Quarantined" : "Released"} source ${name}, recorded in the ledger with your reason.`,
    });
    refresh();
  };
  const reached = (graph.data?.nodes ?? []).filter((n) => n.type === "version" && n.fromSource > 0);
  const startExport = async (reason: string) => {
    const version = exportVersion || reached[reached.length - 1]?.key || "";
    // The reason is recorded with who asked and what is excluded (job.submitted).
    const job = await post<Job>("/jobs", {
      kind: "export",
      parameters: { version, excludeSources: [name], excludeQuarantined: true, reason },
    });
    setDialog(null);
    setNotice({
      text: `Export of ${short(version, 24)} without ${name} started as job ${job.jobId}.`,
      href: `/jobs/${job.jobId}`,
    });
  };

  return (
    <>
      <h1>
        Source <span class="mono">{name}</span>
        {risk.data?.quarantined === true && (
          <>
            {" "}
            <Pill tone="bad">quarantined</Pill>
          </>
        )}
      </h1>
      {notice !== null && (
        <p class="notice" role="status">
          {notice.text} {notice.href !== undefined && <a href={notice.href}>Follow the job →</a>}
        </p>
      )}
      {can("decide") && (
        <div class="actions" data-testid="source-actions">
          {risk.data?.quarantined === true ? (
            <button type="button" onClick={() => setDialog("release")}>
              Release this source
            </button>
          ) : (
            <button type="button" class="danger" onClick={() => setDialog("quarantine")}>
              Quarantine this source
            </button>
          )}
          {can("jobs:write") && reached.length > 0 && (
            <button type="button" onClick={() => setDialog("export")}>
              Export a clean version without it
            </button>
          )}
        </div>
      )}
      <div class="grid">
        <Card title="Risk">
          <Status loaded={risk}>
            {(r) => (
              <>
                <dl class="facts">
                  <dt>kind</dt>
                  <dd>{r.kind}</dd>
                  <dt>samples</dt>
                  <dd data-testid="source-samples">{count(r.samples)}</dd>
                  <dt>flagged samples</dt>
                  <dd>
                    {count(r.flaggedSamples)} ({pct(r.flagRate)})
                  </dd>
                  <dt>per-source finding</dt>
                  <dd>{r.sourceScore === null ? "none" : r.sourceScore.toFixed(2)}</dd>
                </dl>
                {r.trend.length > 0 ? (
                  <LineChart
                    label={`Flag rate of ${name} per scan`}
                    times={r.trend.map((t) => t.at)}
                    values={r.trend.map((t) => t.rate * 100)}
                    unit="% flagged"
                  />
                ) : (
                  <p class="muted">No scan has flagged a sample of this source.</p>
                )}
                <h3>Annotators</h3>
                {r.annotators.length === 0 ? (
                  <p class="muted">Its samples carry no annotations.</p>
                ) : (
                  <ul class="plain">
                    {r.annotators.map((a) => (
                      <li key={a.annotator}>
                        {a.annotator}: {count(a.samples)} samples
                      </li>
                    ))}
                  </ul>
                )}
              </>
            )}
          </Status>
        </Card>
        <Card title="Keys">
          <Status loaded={source}>
            {(s) => (
              <>
                <p>
                  Trust {s.trust.toFixed(2)};{" "}
                  {s.requireSignature ? "deliveries must be signed" : "unsigned deliveries are allowed"}.
                </p>
                <ul class="plain">
                  {s.keys.map((k) => (
                    <li key={k.keyId}>
                      <span class="mono">{short(k.keyId, 16)}</span>{" "}
                      {k.revokedAt === null ? (
                        <Pill tone="ok">active</Pill>
                      ) : (
                        <Pill tone="bad">revoked {when(k.revokedAt)}</Pill>
                      )}
                    </li>
                  ))}
                  {s.keys.length === 0 && <li class="muted">No keys.</li>}
                </ul>
              </>
            )}
          </Status>
        </Card>
      </div>
      <Card title="Blast radius">
        <Status loaded={graph}>
          {(g) => (
            <>
              <p class="muted">
                Source → deliveries → dataset versions → derived versions → models → fine-tuned models; every
                edge counts the source's samples that flow along it.
              </p>
              <BlastRadiusGraph graph={g} />
              <TableWrap label="Blast radius as a list">
                <table data-testid="blast-radius-list">
                  <thead>
                    <tr>
                      <th scope="col">reached</th>
                      <th scope="col">what</th>
                      <th scope="col" class="num">
                        samples from {name}
                      </th>
                      <th scope="col" class="num">
                        of which quarantined
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {g.nodes.map((n) => (
                      <tr key={n.id} data-node={n.id}>
                        <td>{n.type}</td>
                        <td>
                          {n.type === "delivery" || n.type === "source" ? (
                            <span class="mono">{short(n.label, 40)}</span>
                          ) : (
                            <a href={hrefOf(n)}>{short(n.label, 40)}</a>
                          )}
                        </td>
                        <td class="num">
                          {count(n.fromSource)}
                          {n.type === "version" ? ` of ${count(n.total)}` : ""}
                        </td>
                        <td class="num" data-testid="quarantined-count">
                          {count(n.quarantined)}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            </>
          )}
        </Status>
      </Card>
      <Card title="Deliveries over time">
        <Status loaded={deliveries}>
          {(p) =>
            p.items.length === 0 ? (
              <p class="muted">No deliveries.</p>
            ) : (
              <>
                <LineChart
                  label={`Samples per delivery of ${name}`}
                  times={p.items.map((d) => d.at)}
                  values={p.items.map((d) => d.sampleCount)}
                  unit="samples"
                  height={140}
                />
                <TableWrap label="Deliveries">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">when</th>
                        <th scope="col">delivery</th>
                        <th scope="col" class="num">
                          samples
                        </th>
                        <th scope="col">key</th>
                        <th scope="col">version</th>
                      </tr>
                    </thead>
                    <tbody>
                      {p.items.map((d) => (
                        <tr key={d.deliveryId}>
                          <td>{when(d.at)}</td>
                          <td class="mono">{short(d.deliveryId, 16)}</td>
                          <td class="num">{count(d.sampleCount)}</td>
                          <td class="mono">{d.keyId === null ? "unsigned" : short(d.keyId, 12)}</td>
                          <td>
                            <a href={`/versions/${encodeURIComponent(d.datasetVersion)}`}>
                              {short(d.datasetVersion, 28)}
                            </a>
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </TableWrap>
              </>
            )
          }
        </Status>
      </Card>
      <SourceSamples name={name} />
      <ReasonDialog
        open={dialog === "quarantine"}
        title={`Quarantine ${name}`}
        confirm="Quarantine"
        onCancel={() => setDialog(null)}
        onConfirm={decide("quarantine")}
      >
        <p>
          Every sample this source delivered is kept out of exports from now on, in every version it reached.
        </p>
      </ReasonDialog>
      <ReasonDialog
        open={dialog === "release"}
        title={`Release ${name}`}
        confirm="Release"
        onCancel={() => setDialog(null)}
        onConfirm={decide("release")}
      />
      <ReasonDialog
        open={dialog === "export"}
        title={`Export a clean version without ${name}`}
        confirm="Start export"
        onCancel={() => setDialog(null)}
        onConfirm={startExport}
      >
        <label for="export-version">Version to clean</label>
        <select
          id="export-version"
          value={exportVersion || reached[reached.length - 1]?.key}
          onChange={(e) => setExportVersion(e.currentTarget.value)}
        >
          {reached.map((v) => (
            <option key={v.key} value={v.key}>
              {short(v.key, 40)} ({count(v.fromSource)} of {count(v.total)} from {name})
            </option>
          ))}
        </select>
        <p class="muted">
          The new version is signed with the ledger's key and recorded with its parent; quarantined samples
          are left out too. The ledger records who asked, what was excluded and your reason with the job.
        </p>
      </ReasonDialog>
    </>
  );
}

function SourceSamples({ name }: { name: string }) {
  const pager = useCursor();
  const page = useLoad(
    () =>
      get<Page<SampleSummary>>(`/sources/${encodeURIComponent(name)}/samples`, {
        limit: 50,
        cursor: pager.cursor,
      }),
    [name, pager.cursor],
  );
  return (
    <Card title="Samples">
      <Status loaded={page}>
        {(p) => (
          <>
            <TableWrap label="Samples of this source">
              <table>
                <thead>
                  <tr>
                    <th scope="col">sample</th>
                    <th scope="col">label</th>
                    <th scope="col" class="num">
                      findings
                    </th>
                    <th scope="col" class="num">
                      top score
                    </th>
                    <th scope="col">state</th>
                  </tr>
                </thead>
                <tbody>
                  {p.items.map((s) => (
                    <tr key={s.digest}>
                      <td>
                        <a href={`/samples/${s.digest}`}>{short(s.id, 32)}</a>
                      </td>
                      <td>{s.label ?? "—"}</td>
                      <td class="num">{s.findings}</td>
                      <td class="num">{s.topScore === null ? "—" : s.topScore.toFixed(2)}</td>
                      <td>{s.quarantined ? <Pill tone="bad">quarantined</Pill> : ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
            <Pager cursor={pager} next={p.nextCursor} />
          </>
        )}
      </Status>
    </Card>
  );
}
