// Telemetry: the deployed fleet as monitoring sees it — each model's status (suspend it, and
// deployments polling GET /v1/models/{digest}/status stop serving it), the monitors' latest
// alerts, the agents riskiest first (monitor findings, then refusals) with what they sent and
// what was refused from them, and one agent's detail (?agent=<name>): its refusals by reason
// and the latest ones, and its batches a page at a time, each of which can be quarantined so
// the closed-loop gate leaves it out of the next training set. Actions show only to a role
// that may take them; the server checks again.
import { useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { get, post } from "../api";
import { useAuth } from "../auth";
import { ReasonDialog } from "../components/ReasonDialog";
import { Card, Pill, Stat, Status, TableWrap } from "../components/ui";
import { count, short, when } from "../format";
import { useLoad } from "../hooks";
import type { FleetAlert, FleetModel, FleetStatus } from "../types";
import { AgentDetail } from "./TelemetryAgent";

/** Alerts listed, newest first. */
const ALERTS = 25;

const agentHref = (name: string) => `/telemetry?agent=${encodeURIComponent(name)}`;
const score = (x: number) => x.toFixed(2);

export function Telemetry() {
  const { query } = useRoute();
  const selected = query.agent;
  const { can } = useAuth();
  const fleet = useLoad(() => get<FleetStatus>("/telemetry/fleet", { alerts: ALERTS }), []);
  const [dialog, setDialog] = useState<{ action: "suspend" | "resume"; model: FleetModel } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const changeModel = async (reason: string) => {
    if (dialog === null) return;
    const { action, model } = dialog;
    await post(`/models/${model.digest}/${action}`, { reason });
    setDialog(null);
    setNotice(
      `${action === "suspend" ? "Suspended" : "Resumed"} model ${model.name}, recorded in the ledger with your reason.`,
    );
    fleet.reload();
  };

  return (
    <>
      <h1>Telemetry</h1>
      {notice !== null && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <div class="actions">
        <button type="button" onClick={fleet.reload} disabled={fleet.loading}>
          {fleet.loading ? "Refreshing…" : "Refresh"}
        </button>
      </div>
      <Status loaded={fleet}>
        {(f) => {
          const agent = selected === undefined ? undefined : f.agents.find((a) => a.name === selected);
          return (
            <>
              <div class="stats">
                <Stat label="agents" value={count(f.totals.agents)} />
                <Stat label="accepted batches" value={count(f.totals.batches)} />
                <Stat label="records" value={count(f.totals.records)} />
                <Stat
                  label="refused batches"
                  value={count(f.totals.refusals)}
                  tone={f.totals.refusals > 0 ? "bad" : "ok"}
                />
                <Stat
                  label="monitor findings"
                  value={count(f.totals.monitorFindings)}
                  tone={f.totals.monitorFindings > 0 ? "bad" : "ok"}
                />
                <Stat
                  label="suspended models"
                  value={count(f.totals.suspendedModels)}
                  tone={f.totals.suspendedModels > 0 ? "bad" : "ok"}
                />
              </div>
              <Models
                models={f.models}
                onAction={can("decide") ? (action, model) => setDialog({ action, model }) : null}
              />
              <Alerts alerts={f.alerts} models={f.models} />
              <Agents fleet={f} selected={selected} />
              {selected !== undefined &&
                (agent === undefined ? (
                  <p class="error" role="alert">
                    <strong>NOT_FOUND</strong>: "{selected}" is not a registered agent.
                  </p>
                ) : (
                  <AgentDetail
                    key={agent.name}
                    agent={agent}
                    canDecide={can("decide")}
                    onChanged={fleet.reload}
                  />
                ))}
            </>
          );
        }}
      </Status>
      <ReasonDialog
        open={dialog !== null}
        title={`${dialog?.action === "resume" ? "Resume" : "Suspend"} model ${dialog?.model.name ?? ""}`}
        confirm={dialog?.action === "resume" ? "Resume" : "Suspend"}
        onCancel={() => setDialog(null)}
        onConfirm={changeModel}
      >
        <p>
          {dialog?.action === "resume"
            ? "Its status becomes active again: deployments polling it may serve it."
            : "Its status becomes suspended: deployments polling GET /v1/models/{digest}/status stop serving it. The model stays registered, with its lineage."}
        </p>
      </ReasonDialog>
    </>
  );
}

function Models({
  models,
  onAction,
}: {
  models: FleetModel[];
  onAction: ((action: "suspend" | "resume", model: FleetModel) => void) | null;
}) {
  return (
    <Card title="Deployed models">
      {models.length === 0 ? (
        <p class="muted">No model is registered: agents attest which registered model they run.</p>
      ) : (
        <TableWrap label="Models, with the telemetry that attests them">
          <table data-testid="fleet-models">
            <thead>
              <tr>
                <th scope="col">model</th>
                <th scope="col">status</th>
                <th scope="col" class="num">
                  batches
                </th>
                <th scope="col" class="num">
                  agents
                </th>
                <th scope="col" class="num">
                  monitor findings
                </th>
                <th scope="col">last batch</th>
                {onAction !== null && <th scope="col">action</th>}
              </tr>
            </thead>
            <tbody>
              {models.map((m) => (
                <tr key={m.digest} data-model={m.digest}>
                  <td>
                    <a href={`/models/${m.digest}`}>{m.name}</a>{" "}
                    <span class="mono muted">{short(m.digest, 12)}</span>
                  </td>
                  <td data-testid="model-status">
                    {m.status === "suspended" ? (
                      <>
                        <Pill tone="bad">suspended</Pill> {when(m.since)}
                        {m.reason !== null && (
                          <div class="muted">
                            {m.reason} ({m.actor})
                          </div>
                        )}
                      </>
                    ) : (
                      <Pill tone="ok">active</Pill>
                    )}
                  </td>
                  <td class="num">{count(m.batches)}</td>
                  <td class="num">{count(m.agents)}</td>
                  <td class="num">{count(m.findings)}</td>
                  <td>{when(m.lastBatchAt)}</td>
                  {onAction !== null && (
                    <td>
                      {m.status === "suspended" ? (
                        <button type="button" onClick={() => onAction("resume", m)}>
                          Resume
                        </button>
                      ) : (
                        <button type="button" class="danger" onClick={() => onAction("suspend", m)}>
                          Suspend
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </Card>
  );
}

function Alerts({ alerts, models }: { alerts: FleetAlert[]; models: FleetModel[] }) {
  const nameOf = new Map(models.map((m) => [m.digest, m.name]));
  return (
    <Card title="Monitor alerts">
      {alerts.length === 0 ? (
        <p class="muted">No monitor has raised an alert.</p>
      ) : (
        <TableWrap label="Monitor alerts, newest first">
          <table data-testid="monitor-alerts">
            <thead>
              <tr>
                <th scope="col">when</th>
                <th scope="col">monitor</th>
                <th scope="col">kind</th>
                <th scope="col">subject</th>
                <th scope="col" class="num">
                  score
                </th>
                <th scope="col">batch</th>
              </tr>
            </thead>
            <tbody>
              {alerts.map((a) => (
                <tr key={a.seq}>
                  <td>{when(a.at)}</td>
                  <td>{a.check.replace(/^monitor\//, "")}</td>
                  <td>{a.kind}</td>
                  <td>
                    {a.subjectType === "model" ? (
                      <>
                        model{" "}
                        <a href={`/models/${a.subjectId}`}>
                          {nameOf.get(a.subjectId) ?? short(a.subjectId, 12)}
                        </a>
                      </>
                    ) : a.agent !== null ? (
                      <>
                        {a.subjectType === "source" ? "agent" : "batch of"}{" "}
                        <a href={agentHref(a.agent)}>{a.agent}</a>
                      </>
                    ) : (
                      <span class="mono">{a.subjectId}</span>
                    )}
                  </td>
                  <td class="num">{score(a.score)}</td>
                  <td class="mono nowrap">{a.batchId ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </Card>
  );
}

function Agents({ fleet, selected }: { fleet: FleetStatus; selected: string | undefined }) {
  return (
    <Card title="Agents, riskiest first">
      {fleet.agents.length === 0 ? (
        <p class="muted">
          No agent is registered (<code>antidote source add NAME --kind agent --key KEY.pub</code>).
        </p>
      ) : (
        <TableWrap label="Agents, riskiest first">
          <table data-testid="fleet-agents">
            <caption class="sr-only">
              Agents with the most monitor findings first, then the most refused batches.
            </caption>
            <thead>
              <tr>
                <th scope="col">agent</th>
                <th scope="col" class="num">
                  monitor findings
                </th>
                <th scope="col">refused batches</th>
                <th scope="col" class="num">
                  batches
                </th>
                <th scope="col" class="num">
                  records
                </th>
                <th scope="col">last batch</th>
                <th scope="col" class="num">
                  gaps
                </th>
                <th scope="col">keys</th>
                <th scope="col">state</th>
              </tr>
            </thead>
            <tbody>
              {fleet.agents.map((a) => (
                <tr
                  key={a.name}
                  data-agent={a.name}
                  class={a.findings.count > 0 ? "suspect" : ""}
                  aria-current={a.name === selected ? "true" : undefined}
                >
                  <td>
                    <a href={agentHref(a.name)}>{a.name}</a>
                  </td>
                  <td class="num">
                    {count(a.findings.count)}
                    {a.findings.latest !== null && (
                      <div class="muted">
                        latest {a.findings.latest.kind} ({score(a.findings.latest.score)})
                      </div>
                    )}
                  </td>
                  <td data-testid="agent-refusals">
                    {a.refusals.total === 0 ? (
                      "0"
                    ) : (
                      <>
                        {count(a.refusals.total)}:{" "}
                        {a.refusals.byCode.map((r) => `${r.code} ×${count(r.refusals)}`).join(", ")}
                      </>
                    )}
                  </td>
                  <td class="num">{count(a.batches)}</td>
                  <td class="num">{count(a.records)}</td>
                  <td>
                    {a.lastBatch === null ? (
                      "—"
                    ) : (
                      <>
                        #{a.lastBatch.sequence} {when(a.lastBatch.at)}
                      </>
                    )}
                  </td>
                  <td class="num">
                    {a.gaps.batches === 0
                      ? "0"
                      : `${count(a.gaps.batches)} (${count(a.gaps.missing)} missing)`}
                  </td>
                  <td>
                    {a.keys.current} current
                    {a.keys.revoked > 0 ? `, ${a.keys.revoked} revoked` : ""}
                  </td>
                  <td>{a.quarantined ? <Pill tone="bad">quarantined</Pill> : <Pill>active</Pill>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
      {fleet.unattributedRefusals.length > 0 && (
        <p class="muted" data-testid="unattributed-refusals">
          Also refused, under names that are not registered agents:{" "}
          {fleet.unattributedRefusals
            .map((r) => `${r.agent === "" ? "unregistered names" : r.agent}: ${r.code} ×${count(r.refusals)}`)
            .join("; ")}
          .
        </p>
      )}
    </Card>
  );
}
