// One agent's telemetry, below the fleet on the Telemetry page (?agent=<name>): what it sent and
// what the monitors found on it, its refused batches by reason and the latest refusals with the
// message the agent was told, and its accepted batches a page at a time — each of which an
// analyst can quarantine (the closed-loop gate then leaves its records out of every training
// candidate) or release, with a reason the ledger records.
import { useEffect, useRef, useState } from "preact/hooks";
import { get, post } from "../api";
import { ReasonDialog } from "../components/ReasonDialog";
import { Card, Pager, Pill, Status, TableWrap } from "../components/ui";
import { count, short, when } from "../format";
import { useCursor, useLoad } from "../hooks";
import type { FleetAgent, Page, TelemetryBatch, TelemetryRefusalPage } from "../types";

/** Batches per page. */
const BATCHES = 20;
/** Latest refusals listed. */
const REFUSALS = 10;

const score = (x: number) => x.toFixed(2);

export function AgentDetail({
  agent,
  canDecide,
  onChanged,
}: {
  agent: FleetAgent;
  canDecide: boolean;
  onChanged: () => void;
}) {
  const pager = useCursor();
  const batches = useLoad(
    () =>
      get<Page<TelemetryBatch>>("/telemetry/batches", {
        agent: agent.name,
        limit: BATCHES,
        cursor: pager.cursor,
      }),
    [agent.name, pager.cursor],
  );
  const refusals = useLoad(
    () => get<TelemetryRefusalPage>("/telemetry/refusals", { agent: agent.name, limit: REFUSALS }),
    [agent.name],
  );
  const [target, setTarget] = useState<{ action: "quarantine" | "release"; batch: TelemetryBatch } | null>(
    null,
  );
  const [notice, setNotice] = useState<string | null>(null);
  const heading = useRef<HTMLDivElement>(null);
  useEffect(() => heading.current?.scrollIntoView({ block: "start" }), [agent.name]);

  const decide = async (reason: string) => {
    if (target === null) return;
    const { action, batch } = target;
    await post("/telemetry/quarantine", { action, batches: [batch.batchId], reason });
    setTarget(null);
    setNotice(
      `${action === "quarantine" ? "Quarantined" : "Released"} batch ${batch.batchId}, recorded in the ledger with your reason.`,
    );
    batches.reload();
    onChanged();
  };

  return (
    <div ref={heading} data-testid="agent-detail">
      <Card title={`Agent ${agent.name}`}>
        <p>
          <a href={`/sources/${encodeURIComponent(agent.name)}`}>
            Keys, deliveries and blast radius of {agent.name} →
          </a>
        </p>
        {notice !== null && (
          <p class="notice" role="status">
            {notice}
          </p>
        )}
        <div class="grid">
          <dl class="facts">
            <dt>state</dt>
            <dd>{agent.quarantined ? <Pill tone="bad">quarantined</Pill> : <Pill>active</Pill>}</dd>
            <dt>batches</dt>
            <dd>
              {count(agent.batches)} accepted, {count(agent.quarantinedBatches)} quarantined
            </dd>
            <dt>records</dt>
            <dd>
              {count(agent.records)} ({count(agent.feedback)} with feedback labels)
            </dd>
            <dt>sequence gaps</dt>
            <dd>
              {count(agent.gaps.batches)} batches, {count(agent.gaps.missing)} numbers skipped
            </dd>
            <dt>models attested</dt>
            <dd>
              {agent.models.map((m) => (
                <div key={m}>
                  <a href={`/models/${m}`} class="mono">
                    {short(m, 16)}
                  </a>
                </div>
              ))}
              {agent.models.length === 0 && "none"}
            </dd>
            <dt>monitor findings</dt>
            <dd>
              {count(agent.findings.onAgent)} on the agent, {count(agent.findings.onBatches)} on its batches
              {agent.findings.maxScore !== null && `; highest score ${score(agent.findings.maxScore)}`}
            </dd>
          </dl>
          <div>
            <h3>Refused batches by reason</h3>
            {agent.refusals.byCode.length === 0 ? (
              <p class="muted">Nothing refused.</p>
            ) : (
              <ul class="plain" data-testid="refusals-by-reason">
                {agent.refusals.byCode.map((r) => (
                  <li key={r.code}>
                    <strong>{r.code}</strong>: {count(r.refusals)} (last {when(r.lastAt)})
                  </li>
                ))}
              </ul>
            )}
          </div>
        </div>
        <h3>Latest refusals</h3>
        <Status loaded={refusals}>
          {(p) =>
            p.items.length === 0 ? (
              <p class="muted">None kept.</p>
            ) : (
              <TableWrap label={`Latest refusals of ${agent.name}`}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">when</th>
                      <th scope="col">reason</th>
                      <th scope="col">sent by</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.items.map((r) => (
                      <tr key={r.id}>
                        <td>{when(r.at)}</td>
                        <td>
                          <strong>{r.code}</strong>: {r.message}
                        </td>
                        <td>{r.principal}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            )
          }
        </Status>
        <h3>Batches, in the order accepted</h3>
        <Status loaded={batches}>
          {(p) => (
            <>
              <TableWrap label={`Batches of ${agent.name}`}>
                <table data-testid="agent-batches">
                  <thead>
                    <tr>
                      <th scope="col">batch</th>
                      <th scope="col">accepted</th>
                      <th scope="col">window</th>
                      <th scope="col" class="num">
                        records
                      </th>
                      <th scope="col">model</th>
                      <th scope="col">gap</th>
                      <th scope="col">state</th>
                      {canDecide && <th scope="col">action</th>}
                    </tr>
                  </thead>
                  <tbody>
                    {p.items.map((b) => (
                      <tr key={b.batchId} data-batch={b.batchId}>
                        <td class="mono nowrap">{b.batchId}</td>
                        <td>{when(b.at)}</td>
                        <td>
                          {when(b.window.start)} – {when(b.window.end)}
                        </td>
                        <td class="num">{count(b.count)}</td>
                        <td class="mono">{short(b.model, 12)}</td>
                        <td>{b.gap === null ? "" : `expected #${b.gap.expected}`}</td>
                        <td>{b.quarantined ? <Pill tone="bad">quarantined</Pill> : ""}</td>
                        {canDecide && (
                          <td class="nowrap">
                            {!b.quarantined ? (
                              <button
                                type="button"
                                onClick={() => setTarget({ action: "quarantine", batch: b })}
                              >
                                Quarantine batch
                              </button>
                            ) : (
                              !agent.quarantined && (
                                <button
                                  type="button"
                                  onClick={() => setTarget({ action: "release", batch: b })}
                                >
                                  Release batch
                                </button>
                              )
                            )}
                          </td>
                        )}
                      </tr>
                    ))}
                    {p.items.length === 0 && (
                      <tr>
                        <td colSpan={canDecide ? 8 : 7} class="muted">
                          No batch accepted.
                        </td>
                      </tr>
                    )}
                  </tbody>
                </table>
              </TableWrap>
              <Pager cursor={pager} next={p.nextCursor} />
            </>
          )}
        </Status>
      </Card>
      <ReasonDialog
        open={target !== null}
        title={`${target?.action === "release" ? "Release" : "Quarantine"} batch ${target?.batch.batchId ?? ""}`}
        confirm={target?.action === "release" ? "Release" : "Quarantine"}
        onCancel={() => setTarget(null)}
        onConfirm={decide}
      >
        <p>
          {target?.action === "release"
            ? "The batch may reach a training candidate again."
            : "The batch stays in the ledger as evidence; the closed-loop gate leaves its records out of every training candidate."}
        </p>
      </ReasonDialog>
    </div>
  );
}
