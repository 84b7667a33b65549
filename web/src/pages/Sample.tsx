// One sample's story (GET /v1/samples/{digest}/trace): where it came from, the versions it
// is in, every finding with its evidence, the decisions about it — and its content when a
// scan report previewed it.
import { useRoute } from "preact-iso";
import { get } from "../api";
import { PreviewView, loadPreviews, type Preview } from "../components/ScanReport";
import { Card, Pill, Status, TableWrap } from "../components/ui";
import { short, when } from "../format";
import { useLoad } from "../hooks";
import type { SampleTrace } from "../types";

export function SamplePage() {
  const { params, query } = useRoute();
  const digest = params.digest ?? "";
  const job = query.job;
  const trace = useLoad(() => get<SampleTrace>(`/samples/${encodeURIComponent(digest)}/trace`), [digest]);
  const preview = useLoad(
    (): Promise<Map<string, Preview>> =>
      job === undefined ? Promise.resolve(new Map<string, Preview>()) : loadPreviews(job),
    [job],
  );
  return (
    <Status loaded={trace}>
      {(t) => (
        <>
          <h1>
            Sample <span class="mono">{short(t.sample.id, 40)}</span>{" "}
            {t.quarantined ? <Pill tone="bad">quarantined</Pill> : <Pill>not quarantined</Pill>}
          </h1>
          <div class="grid">
            <Card title="Sample">
              <dl class="facts">
                <dt>digest</dt>
                <dd class="mono">{t.sample.digest}</dd>
                <dt>label</dt>
                <dd>{t.sample.label ?? "—"}</dd>
                <dt>annotations</dt>
                <dd>
                  {t.sample.annotations.length === 0
                    ? "none"
                    : t.sample.annotations.map((a) => `${a.annotator}: ${a.label}`).join(", ")}
                </dd>
                <dt>content</dt>
                <dd data-testid="sample-preview">
                  <PreviewView preview={preview.data?.get(t.sample.digest)} />
                </dd>
              </dl>
            </Card>
            <Card title="Origins">
              <ul class="plain">
                {t.origins.map((o) => (
                  <li key={o.deliveryId}>
                    <a href={`/sources/${encodeURIComponent(o.source)}`}>{o.source}</a> ({o.sourceKind}),
                    delivery <span class="mono">{short(o.deliveryId, 12)}</span>, {when(o.at)},{" "}
                    {o.keyId === null ? "unsigned" : `key ${short(o.keyId, 8)}`}
                  </li>
                ))}
              </ul>
              <h3>In versions</h3>
              <ul class="plain">
                {t.datasetVersions.map((v) => (
                  <li key={v}>
                    <a href={`/versions/${encodeURIComponent(v)}`}>{short(v, 40)}</a>
                  </li>
                ))}
              </ul>
            </Card>
          </div>
          <Card title="Findings">
            {t.findings.length === 0 ? (
              <p class="muted">No findings.</p>
            ) : (
              <TableWrap label="Findings">
                <table data-testid="sample-findings">
                  <thead>
                    <tr>
                      <th scope="col">kind</th>
                      <th scope="col">check</th>
                      <th scope="col" class="num">
                        score
                      </th>
                      <th scope="col">when</th>
                      <th scope="col">evidence</th>
                    </tr>
                  </thead>
                  <tbody>
                    {t.findings.map((f) => (
                      <tr key={f.seq}>
                        <td>{f.kind}</td>
                        <td>
                          {f.check} {f.checkVersion}
                        </td>
                        <td class="num">{f.score.toFixed(3)}</td>
                        <td>{when(f.at)}</td>
                        <td>
                          <details>
                            <summary>evidence</summary>
                            <pre>{JSON.stringify(f.evidence, null, 1)}</pre>
                          </details>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            )}
          </Card>
          <Card title="Decisions">
            {t.decisions.length === 0 ? (
              <p class="muted">None.</p>
            ) : (
              <ul class="plain">
                {t.decisions.map((d, i) => (
                  <li key={i}>
                    {when(d.at)}: <strong>{d.action}</strong> by {d.actor} — {d.reason}
                  </li>
                ))}
              </ul>
            )}
          </Card>
        </>
      )}
    </Status>
  );
}
