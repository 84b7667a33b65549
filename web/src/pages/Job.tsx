// One job, live: its record is followed over Server-Sent Events (GET /v1/jobs/{id}/events)
// until it ends, each change of stage written to the log below; then its result, its files
// and, for a scan or an audit, its report.
import { useEffect, useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { download, get, post, saveBlob, stream } from "../api";
import { useAuth } from "../auth";
import { ScanReportView } from "../components/ScanReport";
import { Card, ErrorBox } from "../components/ui";
import { pct, when } from "../format";
import type { Job } from "../types";
import { StatePill } from "./Jobs";
import { AuditReportView } from "./Model";

const TERMINAL = new Set(["done", "failed", "cancelled"]);

export function JobPage() {
  const { params } = useRoute();
  const id = params.id ?? "";
  const { can } = useAuth();
  const [job, setJob] = useState<Job | null>(null);
  const [log, setLog] = useState<string[]>([]);
  const [error, setError] = useState<Error | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    setJob(null);
    setLog([]);
    let lastStage = "";
    const seen = (record: Job) => {
      setJob(record);
      const stage = `${record.state}${record.progress === null ? "" : ` · ${record.progress.stage}`}`;
      if (stage !== lastStage) {
        lastStage = stage;
        setLog((l) => [...l, `${when(record.updatedAt)}  ${stage}`]);
      }
    };
    get<Job>(`/jobs/${id}`)
      .then((record) => {
        seen(record);
        if (TERMINAL.has(record.state)) return;
        return stream(
          `/jobs/${id}/events`,
          (event, data) => {
            if (event === "job") seen(JSON.parse(data) as Job);
            if (event === "error")
              setError(new Error((JSON.parse(data) as { error: { message: string } }).error.message));
          },
          abort.signal,
        );
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(e as Error);
      });
    return () => abort.abort();
  }, [id]);

  if (error !== null && job === null) return <ErrorBox error={error} />;
  if (job === null)
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  const p = job.progress;
  const fraction = p !== null && p.total > 0 ? p.done / p.total : null;
  return (
    <>
      <h1>
        Job <span class="mono">{job.jobId}</span> <StatePill state={job.state} />
      </h1>
      {error !== null && <ErrorBox error={error} />}
      <div class="grid">
        <Card title="Progress">
          <div aria-live="polite" data-testid="job-progress">
            <p>
              <strong data-testid="job-state">{job.state}</strong>
              {p !== null && ` · ${p.stage}${fraction !== null ? ` · ${p.done} / ${p.total}` : ""}`}
            </p>
            {!TERMINAL.has(job.state) && (
              <progress max={1} value={fraction ?? undefined} aria-label="job progress">
                {fraction === null ? "" : pct(fraction)}
              </progress>
            )}
          </div>
          <dl class="facts">
            <dt>kind</dt>
            <dd>{job.kind}</dd>
            <dt>by</dt>
            <dd>{job.principal}</dd>
            <dt>submitted</dt>
            <dd>{when(job.createdAt)}</dd>
            <dt>attempts</dt>
            <dd>{job.attempts}</dd>
            <dt>parameters</dt>
            <dd>
              <pre>{JSON.stringify(job.parameters, null, 1)}</pre>
            </dd>
          </dl>
          {can("jobs:write") && !TERMINAL.has(job.state) && (
            <button
              type="button"
              onClick={() =>
                void post(`/jobs/${job.jobId}/cancel`, {}).catch((e: unknown) => setError(e as Error))
              }
            >
              Cancel job
            </button>
          )}
        </Card>
        <Card title="Log">
          <pre class="log" data-testid="job-log" aria-live="polite">
            {log.join("\n")}
          </pre>
          {job.error !== null && (
            <p class="error" role="alert">
              {job.error}
            </p>
          )}
        </Card>
      </div>
      {job.state === "done" && (
        <>
          <Card title="Result">
            <pre data-testid="job-result">{JSON.stringify(job.result, null, 1)}</pre>
            <h3>Files</h3>
            <ul class="plain">
              {job.artifacts.map((name) => (
                <li key={name}>
                  <button
                    type="button"
                    class="link"
                    onClick={() =>
                      void download(`/jobs/${job.jobId}/artifacts/${name}`).then((b) =>
                        saveBlob(b, name.split("/").pop() ?? name),
                      )
                    }
                  >
                    {name}
                  </button>
                </li>
              ))}
            </ul>
            {job.kind === "export" &&
              typeof job.result === "object" &&
              job.result !== null &&
              "version" in job.result && (
                <p>
                  New version:{" "}
                  <a href={`/versions/${encodeURIComponent(String(job.result.version))}`}>
                    {String(job.result.version)}
                  </a>
                </p>
              )}
          </Card>
          {job.kind === "scan" && <ScanReportView jobId={job.jobId} />}
          {job.kind === "audit" && <AuditReportView jobId={job.jobId} />}
        </>
      )}
    </>
  );
}
