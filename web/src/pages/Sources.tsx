// Every source, riskiest first, a page at a time (the server ranks and pages; a ledger of a
// thousand sources sends fifty rows).
import { get } from "../api";
import { Sparkline } from "../components/Chart";
import { Pager, Pill, Status, TableWrap } from "../components/ui";
import { count, pct, when } from "../format";
import { useCursor, useLoad } from "../hooks";
import type { Page, SourceRisk } from "../types";

export function Sources() {
  const pager = useCursor();
  const page = useLoad(
    () => get<Page<SourceRisk>>("/risk/sources", { limit: 50, cursor: pager.cursor }),
    [pager.cursor],
  );
  return (
    <>
      <h1>Sources</h1>
      <p class="muted">
        Ranked by the latest scan's flag rate, then the per-source finding's score, then the overall flag
        rate.
      </p>
      <Status loaded={page}>
        {(p) => (
          <>
            <TableWrap label="Sources ranked by risk">
              <table>
                <thead>
                  <tr>
                    <th scope="col">source</th>
                    <th scope="col">kind</th>
                    <th scope="col" class="num">
                      trust
                    </th>
                    <th scope="col" class="num">
                      deliveries
                    </th>
                    <th scope="col" class="num">
                      samples
                    </th>
                    <th scope="col" class="num">
                      flagged
                    </th>
                    <th scope="col" class="num">
                      latest flag rate
                    </th>
                    <th scope="col">trend</th>
                    <th scope="col">last delivery</th>
                    <th scope="col">state</th>
                  </tr>
                </thead>
                <tbody>
                  {p.items.map((s) => (
                    <tr key={s.name}>
                      <td>
                        <a href={`/sources/${encodeURIComponent(s.name)}`}>{s.name}</a>
                      </td>
                      <td>{s.kind}</td>
                      <td class="num">{s.trust.toFixed(2)}</td>
                      <td class="num">{count(s.deliveries)}</td>
                      <td class="num">{count(s.samples)}</td>
                      <td class="num">{count(s.flaggedSamples)}</td>
                      <td class="num">{pct(s.latestFlagRate)}</td>
                      <td>
                        <Sparkline
                          values={s.trend.map((t) => t.rate)}
                          label={`flag rate per scan of ${s.name}`}
                        />
                      </td>
                      <td>{when(s.lastDeliveryAt)}</td>
                      <td>{s.quarantined ? <Pill tone="bad">quarantined</Pill> : <Pill>active</Pill>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
            <Pager cursor={pager} next={p.nextCursor} />
          </>
        )}
      </Status>
    </>
  );
}
