// Jobs: the queue, newest first, and the forms that start a scan or an audit.
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { get, post, postForm } from "../api";
import { useAuth } from "../auth";
import { Card, ErrorBox, Pager, Pill, Status, TableWrap } from "../components/ui";
import { pct, short, when } from "../format";
import { useCursor, useLoad } from "../hooks";
import type { DatasetVersion, Job, Page } from "../types";

export function Jobs() {
  const { can } = useAuth();
  const pager = useCursor();
  const jobs = useLoad(() => get<Page<Job>>("/jobs", { limit: 50, cursor: pager.cursor }), [pager.cursor]);
  return (
    <>
      <h1>Jobs</h1>
      {can("jobs:write") && (
        <div class="grid">
          <StartScan />
          <StartAudit />
        </div>
      )}
      <Card title="Queue">
        <Status loaded={jobs}>
          {(p) => (
            <>
              <TableWrap label="Jobs">
                <table data-testid="jobs">
                  <thead>
                    <tr>
                      <th scope="col">job</th>
                      <th scope="col">kind</th>
                      <th scope="col">state</th>
                      <th scope="col">progress</th>
                      <th scope="col">by</th>
                      <th scope="col">submitted</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.items.map((j) => (
                      <tr key={j.jobId}>
                        <td>
                          <a href={`/jobs/${j.jobId}`}>{short(j.jobId, 20)}</a>
                        </td>
                        <td>{j.kind}</td>
                        <td>
                          <StatePill state={j.state} />
                        </td>
                        <td>
                          {j.progress === null
                            ? "—"
                            : `${j.progress.stage}${j.progress.total > 0 ? ` ${pct(j.progress.done / j.progress.total)}` : ""}`}
                        </td>
                        <td>{j.principal}</td>
                        <td>{when(j.createdAt)}</td>
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
    </>
  );
}

export function StatePill({ state }: { state: Job["state"] }) {
  const tone =
    state === "done" ? "ok" : state === "failed" ? "bad" : state === "running" ? "warn" : undefined;
  return <Pill {...(tone !== undefined ? { tone } : {})}>{state}</Pill>;
}

function useVersions() {
  return useLoad(
    () => get<Page<DatasetVersion>>("/versions", { limit: 1000 }).then((p) => p.items.reverse()),
    [],
  );
}

function StartScan() {
  const versions = useVersions();
  const { route } = useLocation();
  const [version, setVersion] = useState("");
  const [error, setError] = useState<Error | null>(null);
  return (
    <Card title="Start a scan">
      <Status loaded={versions}>
        {(list) => (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              setError(null);
              post<Job>("/jobs", { kind: "scan", parameters: { version: version || list[0]?.version } }).then(
                (job) => route(`/jobs/${job.jobId}`),
                (err: unknown) => setError(err as Error),
              );
            }}
          >
            <label for="scan-version">Dataset version</label>
            <select
              id="scan-version"
              value={version || list[0]?.version}
              onChange={(e) => setVersion(e.currentTarget.value)}
            >
              {list.map((v) => (
                <option key={v.version} value={v.version}>
                  {v.name} · {short(v.version, 28)} ({v.sampleCount})
                </option>
              ))}
            </select>
            <button type="submit" disabled={list.length === 0}>
              Start scan
            </button>
            {error !== null && <ErrorBox error={error} />}
          </form>
        )}
      </Status>
    </Card>
  );
}

function StartAudit() {
  const versions = useVersions();
  const { route } = useLocation();
  const [error, setError] = useState<Error | null>(null);
  return (
    <Card title="Start an audit">
      <Status loaded={versions}>
        {(list) => (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              setError(null);
              const data = new FormData(e.currentTarget);
              const form = new FormData();
              form.set("kind", "audit");
              const parameters: Record<string, unknown> = { version: data.get("version") };
              const model = data.get("model");
              if (model instanceof File) form.set("model", model, model.name);
              const reference = data.get("reference");
              if (reference instanceof File && reference.size > 0) {
                form.set("reference", reference, reference.name);
                parameters.references = [reference.name];
              }
              // Neural Cleanse's cost is per label and step: these bound the job's time.
              const labels = data.get("labels");
              if (typeof labels === "string" && labels.trim() !== "")
                parameters.labels = labels
                  .trim()
                  .split(/[\s,]+/)
                  .map(Number);
              const steps = data.get("steps");
              if (typeof steps === "string" && steps.trim() !== "") parameters.steps = Number(steps);
              form.set("parameters", JSON.stringify(parameters));
              postForm<Job>("/jobs", form).then(
                (job) => route(`/jobs/${job.jobId}`),
                (err: unknown) => setError(err as Error),
              );
            }}
          >
            <label for="audit-model">Model (ONNX)</label>
            <input id="audit-model" name="model" type="file" accept=".onnx" required />
            <label for="audit-reference">Known-clean reference model (optional)</label>
            <input id="audit-reference" name="reference" type="file" accept=".onnx" />
            <label for="audit-version">Clean images from version</label>
            <select id="audit-version" name="version">
              {list.map((v) => (
                <option key={v.version} value={v.version}>
                  {v.name} · {short(v.version, 28)}
                </option>
              ))}
            </select>
            <details>
              <summary>Bound the audit's time</summary>
              <label for="audit-labels">Only these labels (class indices, e.g. 0, 8)</label>
              <input id="audit-labels" name="labels" inputMode="numeric" pattern="[0-9, ]*" />
              <label for="audit-steps">Most optimisation steps per label (default 500)</label>
              <input id="audit-steps" name="steps" type="number" min={20} max={100000} />
            </details>
            <button type="submit">Start audit</button>
            {error !== null && <ErrorBox error={error} />}
          </form>
        )}
      </Status>
    </Card>
  );
}
