// Overview: is the ledger intact, which sources are risky and getting worse, what arrived
// lately (verified, or refused and why), what is still open, how much is quarantined and
// what is running.
import { useState } from "preact/hooks";
import { get } from "../api";
import { BarChart, Sparkline } from "../components/Chart";
import { Card, ErrorBox, Pill, Stat, Status, TableWrap } from "../components/ui";
import { count, pct, short, when } from "../format";
import { useLoad } from "../hooks";
import type { Delivery, DeliveryRefusal, Job, Overview as OverviewData, Page, VerifyReport } from "../types";

const VERIFY_KEY = "antidote.lastVerify";
/** Deliveries listed, verified and refused together (the overview sends this many of each). */
const LATEST = 10;

export function Overview() {
  const overview = useLoad(() => get<OverviewData>("/overview"), []);
  const jobs = useLoad(
    () =>
      Promise.all([
        get<Page<Job>>("/jobs", { state: "running", limit: 20 }),
        get<Page<Job>>("/jobs", { state: "queued", limit: 20 }),
      ]).then(([a, b]) => [...a.items, ...b.items]),
    [],
  );
  return (
    <>
      <h1>Overview</h1>
      <Status loaded={overview}>
        {(o) => (
          <>
            <div class="stats">
              <Stat label="sources" value={count(o.sources.total)} />
              <Stat
                label="sources with flagged samples"
                value={count(o.sources.flagged)}
                tone={o.sources.flagged > 0 ? "bad" : "ok"}
              />
              <Stat label="quarantined samples" value={count(o.quarantine.samples)} />
              <Stat label="quarantined sources" value={count(o.quarantine.sources)} />
              <Stat label="deliveries" value={count(o.deliveries.total)} />
              <Stat label="dataset versions" value={count(o.versions)} />
              <Stat label="models" value={count(o.models)} />
            </div>
            <div class="grid">
              <Integrity ledger={o.ledger} />
              <Card title="Running jobs">
                <Status loaded={jobs}>
                  {(list) =>
                    list.length === 0 ? (
                      <p class="muted">
                        Nothing running. <a href="/jobs">Start a scan or an audit</a>.
                      </p>
                    ) : (
                      <ul class="plain">
                        {list.map((j) => (
                          <li key={j.jobId}>
                            <a href={`/jobs/${j.jobId}`}>{j.kind}</a> <Pill>{j.state}</Pill>{" "}
                            {j.progress === null
                              ? ""
                              : `${j.progress.stage} ${j.progress.total > 0 ? pct(j.progress.done / j.progress.total) : ""}`}
                          </li>
                        ))}
                      </ul>
                    )
                  }
                </Status>
              </Card>
            </div>
            <Card title="Sources by risk">
              <TableWrap label="Sources ranked by risk">
                <table>
                  <caption class="sr-only">
                    The riskiest sources first: the latest scan's flag rate, then the per-source finding.
                  </caption>
                  <thead>
                    <tr>
                      <th scope="col">source</th>
                      <th scope="col">kind</th>
                      <th scope="col" class="num">
                        samples
                      </th>
                      <th scope="col" class="num">
                        flagged
                      </th>
                      <th scope="col" class="num">
                        latest flag rate
                      </th>
                      <th scope="col">trend (per scan)</th>
                      <th scope="col">state</th>
                    </tr>
                  </thead>
                  <tbody>
                    {o.sources.riskiest.map((s) => (
                      <tr key={s.name}>
                        <td>
                          <a href={`/sources/${encodeURIComponent(s.name)}`}>{s.name}</a>
                        </td>
                        <td>{s.kind}</td>
                        <td class="num">{count(s.samples)}</td>
                        <td class="num">{count(s.flaggedSamples)}</td>
                        <td class="num">{pct(s.latestFlagRate)}</td>
                        <td>
                          <Sparkline
                            values={s.trend.map((t) => t.rate)}
                            label={`flag rate of ${s.name} per scan: ${s.trend.map((t) => pct(t.rate)).join(", ") || "no scans"}`}
                          />
                        </td>
                        <td>{s.quarantined ? <Pill tone="bad">quarantined</Pill> : <Pill>active</Pill>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
              <p>
                <a href="/sources">All {count(o.sources.total)} sources, ranked →</a>
              </p>
            </Card>
            <div class="grid">
              <Card title="Latest deliveries">
                <LatestDeliveries deliveries={o.deliveries} />
              </Card>
              <Card title="Open findings by kind">
                {o.findings.length === 0 ? (
                  <p class="muted">No findings recorded.</p>
                ) : (
                  <>
                    <BarChart
                      label="Subjects with findings, and how many are still open, by kind"
                      categories={o.findings.map((f) => f.kind)}
                      values={o.findings.map((f) => f.subjects)}
                      highlight={o.findings.map((f) => f.open)}
                      names={["subjects", "open"]}
                    />
                    <TableWrap label="Findings by kind">
                      <table>
                        <thead>
                          <tr>
                            <th scope="col">kind</th>
                            <th scope="col">subject</th>
                            <th scope="col" class="num">
                              subjects
                            </th>
                            <th scope="col" class="num">
                              open
                            </th>
                          </tr>
                        </thead>
                        <tbody>
                          {o.findings.map((f) => (
                            <tr key={`${f.kind}/${f.subjectType}`}>
                              <td>{f.kind}</td>
                              <td>{f.subjectType}</td>
                              <td class="num">{count(f.subjects)}</td>
                              <td class="num">{count(f.open)}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </TableWrap>
                  </>
                )}
              </Card>
            </div>
          </>
        )}
      </Status>
    </>
  );
}

// Verified and refused deliveries in one list, newest first: a refusal wrote nothing to the
// ledger (the server keeps it apart, bounded), but the people watching should see it.
type Arrival =
  | { kind: "verified"; at: string; key: string; delivery: Delivery }
  | { kind: "refused"; at: string; key: string; refusal: DeliveryRefusal };

function LatestDeliveries({ deliveries }: { deliveries: OverviewData["deliveries"] }) {
  const arrivals: Arrival[] = [
    ...deliveries.latest.map((d): Arrival => ({
      kind: "verified",
      at: d.at,
      key: d.deliveryId,
      delivery: d,
    })),
    ...deliveries.refused.map((r): Arrival => ({
      kind: "refused",
      at: r.at,
      key: `refused-${r.id}`,
      refusal: r,
    })),
  ]
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
    .slice(0, LATEST);
  if (arrivals.length === 0) return <p class="muted">No deliveries yet.</p>;
  return (
    <>
      <TableWrap label="Deliveries, verified and refused, newest first">
        <table data-testid="latest-deliveries">
          <thead>
            <tr>
              <th scope="col">when</th>
              <th scope="col">source</th>
              <th scope="col" class="num">
                samples
              </th>
              <th scope="col">verified</th>
            </tr>
          </thead>
          <tbody>
            {arrivals.map((a) =>
              a.kind === "verified" ? (
                <tr key={a.key}>
                  <td>{when(a.at)}</td>
                  <td>
                    <a href={`/sources/${encodeURIComponent(a.delivery.source)}`}>{a.delivery.source}</a>
                  </td>
                  <td class="num">{count(a.delivery.sampleCount)}</td>
                  <td>
                    {a.delivery.keyId === null ? (
                      <Pill tone="warn">unsigned (allowed by policy)</Pill>
                    ) : (
                      <Pill tone="ok">signed · key {short(a.delivery.keyId, 8)}</Pill>
                    )}
                  </td>
                </tr>
              ) : (
                <tr key={a.key} data-testid="refused-delivery">
                  <td>{when(a.at)}</td>
                  <td>
                    {/* The claimed name may not be a registered source: shown as text, not a link. */}
                    {a.refusal.source}
                  </td>
                  <td class="num">—</td>
                  <td>
                    <Pill tone="bad">refused</Pill> <strong>{a.refusal.code}</strong>: {a.refusal.message}{" "}
                    <span class="muted">(sent by {a.refusal.principal})</span>
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      </TableWrap>
      <p class="muted">
        A refused delivery wrote nothing to the ledger; the server keeps the latest refusals apart, with the
        reason. <a href="/deliver">Upload one</a>.
      </p>
    </>
  );
}

function Integrity({ ledger }: { ledger: OverviewData["ledger"] }) {
  const [last, setLast] = useState<{ at: string; report: VerifyReport } | null>(() => {
    const saved = localStorage.getItem(VERIFY_KEY);
    return saved === null ? null : (JSON.parse(saved) as { at: string; report: VerifyReport });
  });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const verify = async () => {
    setBusy(true);
    setError(null);
    try {
      const report = await get<VerifyReport>("/ledger/verify");
      const entry = { at: new Date().toISOString(), report };
      localStorage.setItem(VERIFY_KEY, JSON.stringify(entry));
      setLast(entry);
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title="Ledger integrity">
      <dl class="facts">
        <dt>events</dt>
        <dd>{count(ledger.events)}</dd>
        <dt>signed checkpoints</dt>
        <dd>{count(ledger.checkpoints)}</dd>
        <dt>head</dt>
        <dd>
          {ledger.head === null
            ? "none yet"
            : `#${ledger.head.seq} at ${when(ledger.head.at)}, key ${short(ledger.head.keyId, 12)}`}
        </dd>
        <dt>last verify</dt>
        <dd data-testid="last-verify">
          {last === null ? (
            "not run from this browser"
          ) : last.report.ok ? (
            <>
              <Pill tone="ok">intact</Pill> {count(last.report.events)} events, {when(last.at)}
            </>
          ) : (
            <>
              <Pill tone="bad">TAMPERED</Pill>{" "}
              {last.report.firstBad
                ? `event #${last.report.firstBad.seq}: ${last.report.firstBad.reason}`
                : last.report.tableMismatches.join(", ")}{" "}
              ({when(last.at)})
            </>
          )}
        </dd>
      </dl>
      <button type="button" onClick={() => void verify()} disabled={busy}>
        {busy ? "Verifying every event…" : "Verify now"}
      </button>
      {error !== null && <ErrorBox error={error} />}
    </Card>
  );
}
