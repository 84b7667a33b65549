// A dataset version: its lineage (parent, transform, derived versions, models trained on
// it), its members a page at a time (60,000 members are never sent at once) with quarantine
// of selected samples, its composition per source and per label, and its scan reports —
// with a button to start a new scan.
import { useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { get, post } from "../api";
import { useAuth } from "../auth";
import { BarChart } from "../components/Chart";
import { ReasonDialog } from "../components/ReasonDialog";
import { ScanReportView } from "../components/ScanReport";
import { Card, Pager, Pill, Status, TableWrap } from "../components/ui";
import { count, short, when } from "../format";
import { useCursor, useLoad } from "../hooks";
import type { DatasetVersion, Job, Member, Page, VersionSummary } from "../types";

export function VersionPage() {
  const { params } = useRoute();
  const version = params.version ?? "";
  const { can } = useAuth();
  const v = useLoad(() => get<DatasetVersion>(`/versions/${encodeURIComponent(version)}`), [version]);
  const summary = useLoad(
    () => get<VersionSummary>(`/versions/${encodeURIComponent(version)}/summary`),
    [version],
  );
  const scans = useLoad(
    () =>
      get<Page<Job>>("/jobs", { kind: "scan", limit: 200 }).then((p) =>
        p.items.filter((j) => j.parameters.version === version),
      ),
    [version],
  );
  const [openScan, setOpenScan] = useState<string | null>(null);
  const [notice, setNotice] = useState<{ text: string; href: string } | null>(null);
  const startScan = async () => {
    const job = await post<Job>("/jobs", { kind: "scan", parameters: { version } });
    setNotice({ text: `Scan started as job ${job.jobId}.`, href: `/jobs/${job.jobId}` });
    scans.reload();
  };
  const done = (scans.data ?? []).filter((j) => j.state === "done");
  const shownScan = openScan ?? done[0]?.jobId ?? null;
  return (
    <>
      <h1>
        Dataset version <span class="mono">{short(version, 40)}</span>
      </h1>
      {notice !== null && (
        <p class="notice" role="status">
          {notice.text} <a href={notice.href}>Follow it →</a>
        </p>
      )}
      <div class="grid">
        <Card title="Lineage">
          <Status loaded={v}>
            {(d) => (
              <dl class="facts">
                <dt>name</dt>
                <dd>{d.name}</dd>
                <dt>samples</dt>
                <dd>{count(d.sampleCount)}</dd>
                <dt>Merkle root</dt>
                <dd class="mono">{short(d.merkleRoot, 24)}</dd>
                <dt>parent</dt>
                <dd>
                  {d.parent === null ? (
                    "none (a delivery)"
                  ) : (
                    <a href={`/versions/${encodeURIComponent(d.parent)}`}>{short(d.parent, 32)}</a>
                  )}
                </dd>
                <dt>transform</dt>
                <dd>
                  {d.transform.kind} by {d.transform.tool} {d.transform.toolVersion}
                  {Object.keys(d.transform.parameters).length > 0 && (
                    <details>
                      <summary>parameters</summary>
                      <pre>{JSON.stringify(d.transform.parameters, null, 1)}</pre>
                    </details>
                  )}
                </dd>
                <dt>created</dt>
                <dd>{when(d.createdAt)}</dd>
                {summary.data !== undefined && (
                  <>
                    <dt>derived versions</dt>
                    <dd>
                      {summary.data.children.length === 0
                        ? "none"
                        : summary.data.children.map((c) => (
                            <div key={c}>
                              <a href={`/versions/${encodeURIComponent(c)}`}>{short(c, 32)}</a>
                            </div>
                          ))}
                    </dd>
                    <dt>models trained on it</dt>
                    <dd>
                      {summary.data.models.length === 0
                        ? "none"
                        : summary.data.models.map((m) => (
                            <div key={m}>
                              <a href={`/models/${m}`}>{short(m, 16)}</a>
                            </div>
                          ))}
                    </dd>
                  </>
                )}
              </dl>
            )}
          </Status>
        </Card>
        <Card title="Composition">
          <Status loaded={summary}>
            {(s) => (
              <>
                <p>
                  <Pill tone={s.flagged > 0 ? "bad" : "ok"}>{count(s.flagged)} flagged</Pill>{" "}
                  <Pill>{count(s.quarantined)} quarantined</Pill>
                </p>
                {s.byLabel.length > 0 && (
                  <BarChart
                    label="Members per label"
                    categories={s.byLabel.map((l) => l.label ?? "(none)")}
                    values={s.byLabel.map((l) => l.samples)}
                  />
                )}
                {s.bySource.length > 0 && (
                  <BarChart
                    label="Members per source"
                    categories={s.bySource.map((l) => l.source)}
                    values={s.bySource.map((l) => l.samples)}
                  />
                )}
              </>
            )}
          </Status>
        </Card>
      </div>
      <Card title="Scan reports">
        {can("jobs:write") && (
          <div class="actions">
            <button type="button" onClick={() => void startScan()}>
              Start a scan
            </button>
          </div>
        )}
        <Status loaded={scans}>
          {(list) =>
            list.length === 0 ? (
              <p class="muted">This version has not been scanned.</p>
            ) : (
              <>
                <ul class="plain">
                  {list.map((j) => (
                    <li key={j.jobId}>
                      <a href={`/jobs/${j.jobId}`}>{j.jobId}</a> <Pill>{j.state}</Pill> {when(j.createdAt)}{" "}
                      {j.state === "done" && (
                        <button
                          type="button"
                          aria-pressed={shownScan === j.jobId}
                          onClick={() => setOpenScan(j.jobId)}
                        >
                          Show report
                        </button>
                      )}
                    </li>
                  ))}
                </ul>
                {shownScan !== null && <ScanReportView jobId={shownScan} onQuarantined={summary.reload} />}
              </>
            )
          }
        </Status>
      </Card>
      <Members version={version} onChange={summary.reload} />
    </>
  );
}

function Members({ version, onChange }: { version: string; onChange: () => void }) {
  const { can } = useAuth();
  const pager = useCursor();
  const page = useLoad(
    () =>
      get<Page<Member>>(`/versions/${encodeURIComponent(version)}/members`, {
        limit: 100,
        cursor: pager.cursor,
      }),
    [version, pager.cursor],
  );
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [dialog, setDialog] = useState(false);
  return (
    <Card title="Members">
      {can("decide") && (
        <div class="actions">
          <button type="button" class="danger" disabled={selected.size === 0} onClick={() => setDialog(true)}>
            Quarantine {selected.size} selected
          </button>
        </div>
      )}
      <Status loaded={page}>
        {(p) => (
          <>
            <TableWrap label="Members">
              <table data-testid="members">
                <thead>
                  <tr>
                    {can("decide") && (
                      <th scope="col">
                        <span class="sr-only">select</span>
                      </th>
                    )}
                    <th scope="col">sample</th>
                    <th scope="col">digest</th>
                    <th scope="col">label</th>
                    <th scope="col">source</th>
                    <th scope="col">state</th>
                  </tr>
                </thead>
                <tbody>
                  {p.items.map((m) => (
                    <tr key={m.digest}>
                      {can("decide") && (
                        <td>
                          <input
                            type="checkbox"
                            aria-label={`select ${m.id}`}
                            checked={selected.has(m.digest)}
                            onChange={() =>
                              setSelected((s) => {
                                const n = new Set(s);
                                if (n.has(m.digest)) n.delete(m.digest);
                                else n.add(m.digest);
                                return n;
                              })
                            }
                          />
                        </td>
                      )}
                      <td>
                        <a href={`/samples/${m.digest}`}>{short(m.id, 32)}</a>
                      </td>
                      <td class="mono">{short(m.digest, 12)}</td>
                      <td>{m.label ?? "—"}</td>
                      <td>{m.source ?? "—"}</td>
                      <td>{m.quarantined ? <Pill tone="bad">quarantined</Pill> : ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
            <Pager cursor={pager} next={p.nextCursor} />
          </>
        )}
      </Status>
      <ReasonDialog
        open={dialog}
        title={`Quarantine ${selected.size} samples`}
        confirm="Quarantine"
        onCancel={() => setDialog(false)}
        onConfirm={async (reason) => {
          await post("/decisions", { action: "quarantine", samples: [...selected], reason });
          setDialog(false);
          setSelected(new Set());
          page.reload();
          onChange();
        }}
      />
    </Card>
  );
}
