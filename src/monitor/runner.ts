// The monitor runner: accepted telemetry batches go through the monitors in the order the
// ledger accepted them, each alert is recorded as a finding (one append per batch that raised
// any) and sent to the webhook, and the monitors' state is saved with the last batch read, so
// a restarted server or a cron'd `antidote monitor run` continues where it stopped — a chart
// halfway to its threshold stays halfway.
//
// The state file lives in the ledger's home (`monitor/state.json`) and is written atomically
// after every batch that raised an alert and at the end of each run; it names the digest of
// the setup it was computed under, and a different setup starts the charts afresh (said in the
// result, never silently). State is a cache of the ledger's batches, not evidence: deleting it
// re-reads every batch, and the findings a re-read repeats are skipped (same subject, kind,
// check and batch as one already recorded).
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { writeOutputFile } from "../data/atomic-output.js";
import { openDataset } from "../data/open.js";
import type { Sample } from "../data/sample.js";
import { AntidoteError } from "../errors.js";
import { canonicalJson } from "../ledger/chain.js";
import type { Finding, Ledger } from "../ledger/types.js";
import { imageBatch } from "../onnx/input.js";
import { openOnnxClassifier, type OnnxClassifier } from "../onnx/classifier.js";
import { VERSION } from "../version.js";
import { createAlertSink, type AlertSink, type DeliveryResult } from "./alerts.js";
import {
  createMonitors,
  toFinding,
  type MonitorAlert,
  type Monitors,
  type MonitorsRuntime,
} from "./monitors/index.js";
import { setupPath, type MonitorSetup } from "./setup.js";
import { readDecodedTelemetryBatch } from "./store.js";

const PAGE = 500;

const stateFileSchema = z.object({
  setupDigest: z.string(),
  /** The last batch the monitors read (keyset cursor over accepted order). */
  cursor: z.string().nullable(),
  monitors: z.unknown(),
});

export interface MonitorRunResult {
  batches: number;
  alerts: MonitorAlert[];
  findings: number;
  /** Webhook deliveries (none without a webhook). */
  deliveries: DeliveryResult[];
  /** True when saved state was for another setup (or unreadable) and the charts started afresh. */
  restarted: boolean;
}

export interface MonitorRunner {
  readonly monitors: Monitors;
  /** Read every batch accepted since the last run. */
  run(options?: { onBatch?: (done: number) => void; signal?: AbortSignal }): Promise<MonitorRunResult>;
  close(): Promise<void>;
}

export interface RunnerOptions {
  /** Where the setup was read from (its relative paths resolve against it). */
  setupFile: string;
  /** Overrides the setup's webhook (e.g. for tests); null disables it. */
  sink?: AlertSink | null;
  /** Environment for the webhook secret (default process.env). */
  env?: Record<string, string | undefined>;
}

/** A runner over `ledger` for a setup: opens the models and background images it names. */
export async function createMonitorRunner(
  ledger: Ledger,
  setup: MonitorSetup,
  options: RunnerOptions,
): Promise<MonitorRunner> {
  const setupDigest = createHash("sha256").update(canonicalJson(setup)).digest("hex");
  const stateFile = join(ledger.homeDir, "monitor", "state.json");
  const saved = await readState(stateFile);
  const restarted = saved !== null && saved.setupDigest !== setupDigest;
  let cursor = saved !== null && !restarted ? saved.cursor : null;

  const classifiers: OnnxClassifier[] = [];
  const predictors: NonNullable<MonitorsRuntime["predictors"]> = {};
  const stripBackground: NonNullable<MonitorsRuntime["stripBackground"]> = {};
  const runtime: MonitorsRuntime = { predictors, stripBackground };
  try {
    for (const [digest, m] of Object.entries(setup.models)) {
      const model = await openOnnxClassifier(
        setupPath(options.setupFile, m.onnx),
        m.inputShape ? { inputShape: m.inputShape } : {},
      );
      classifiers.push(model);
      if (model.digest !== digest)
        throw new AntidoteError(
          "DIGEST_MISMATCH",
          `${options.setupFile}: models.${digest.slice(0, 12)}…: the file ${m.onnx} has digest ${model.digest.slice(0, 12)}…, not the one the setup names.`,
        );
      predictors[digest] = async (x, n) => (await model.run(x, n)).probs;
      if (m.background !== null)
        stripBackground[digest] = await backgroundImages(
          setupPath(options.setupFile, m.background.data),
          m.background.skip,
          m.background.count,
          model,
        );
    }
  } catch (e) {
    await Promise.all(classifiers.map((c) => c.close()));
    throw e;
  }
  if (saved !== null && !restarted) runtime.state = saved.monitors;
  const monitors = createMonitors(setup.monitors, runtime);
  const sink = options.sink !== undefined ? options.sink : webhookSink(setup, options.env ?? process.env);
  let running: Promise<MonitorRunResult> | null = null;
  let recordedCache: Set<string> | undefined;

  async function runOnce(o: {
    onBatch?: (done: number) => void;
    signal?: AbortSignal;
  }): Promise<MonitorRunResult> {
    const result: MonitorRunResult = { batches: 0, alerts: [], findings: 0, deliveries: [], restarted };
    // Read once per runner (a server runs after every batch; the ledger's findings can be many),
    // then kept up to date with what this runner records.
    const recorded = (recordedCache ??= await recordedMonitorFindings(ledger));
    await mkdir(join(ledger.homeDir, "monitor"), { recursive: true });
    for (;;) {
      const page = await ledger.listTelemetryBatches({ ...(cursor ? { after: cursor } : {}), limit: PAGE });
      for (const b of page) {
        if (o.signal?.aborted === true) break;
        const batch = await readDecodedTelemetryBatch(ledger, b.batchId);
        const alerts = await monitors.observe(batch);
        cursor = b.batchId;
        result.batches++;
        if (alerts.length > 0) {
          const findings = alerts
            .map((a) => toFinding(a, VERSION))
            .filter((f) => !recorded.has(findingKey(f)));
          if (findings.length > 0) {
            await ledger.append(findings.map((payload) => ({ kind: "finding.recorded" as const, payload })));
            for (const f of findings) recorded.add(findingKey(f));
          }
          result.findings += findings.length;
          result.alerts.push(...alerts);
          if (sink !== null) result.deliveries.push(await sink.send(alerts));
          await saveState(stateFile, setupDigest, cursor, monitors);
        }
        o.onBatch?.(result.batches);
      }
      if (page.length < PAGE || o.signal?.aborted === true) break;
    }
    await saveState(stateFile, setupDigest, cursor, monitors);
    return result;
  }

  return {
    monitors,
    // One run at a time: a call while one runs waits for it and then runs again, so batches
    // accepted meanwhile are read (the server calls this after every accepted batch).
    async run(o = {}) {
      while (running !== null) await running.catch(() => undefined);
      running = runOnce(o);
      try {
        return await running;
      } finally {
        running = null;
      }
    },
    async close() {
      while (running !== null) await running.catch(() => undefined);
      await Promise.all(classifiers.map((c) => c.close()));
    },
  };
}

function webhookSink(setup: MonitorSetup, env: Record<string, string | undefined>): AlertSink | null {
  if (setup.webhook === undefined) return null;
  const secret = env[setup.webhook.secretEnv];
  if (secret === undefined || secret === "")
    throw new AntidoteError(
      "USAGE",
      `the monitor setup sends alerts to a webhook signed with $${setup.webhook.secretEnv}, which is not set.`,
    );
  return createAlertSink({ url: setup.webhook.url, secret });
}

async function readState(file: string): Promise<z.output<typeof stateFileSchema> | null> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return null;
  }
  try {
    const r = stateFileSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null; // an unreadable state is a cache miss: the charts start again from the ledger
  }
}

async function saveState(
  file: string,
  setupDigest: string,
  cursor: string | null,
  monitors: Monitors,
): Promise<void> {
  await writeOutputFile(file, JSON.stringify({ setupDigest, cursor, monitors: monitors.state() }), {
    overwrite: true,
  });
}

/** Findings the monitors recorded already, so a re-read after a lost state does not repeat them. */
async function recordedMonitorFindings(ledger: Ledger): Promise<Set<string>> {
  const out = new Set<string>();
  // Monitors write findings on agents, models and batches only: the (many) sample findings are skipped.
  for (const subjectType of ["source", "model", "telemetry-batch"] as const)
    for await (const f of ledger.findings({ subjectType }))
      if (f.check.startsWith("monitor/")) out.add(findingKey(f));
  return out;
}

function findingKey(f: Pick<Finding, "subjectType" | "subjectId" | "kind" | "check" | "evidence">): string {
  return `${f.subjectType}\u0000${f.subjectId}\u0000${f.kind}\u0000${f.check}\u0000${typeof f.evidence.batchId === "string" ? f.evidence.batchId : ""}`;
}

async function backgroundImages(
  data: string,
  skip: number,
  count: number,
  model: OnnxClassifier,
): Promise<{ x: Float32Array; n: number }> {
  const dataset = await openDataset(data);
  const samples: Sample[] = [];
  let seen = 0;
  for await (const s of dataset.samples()) {
    if (seen++ < skip) continue;
    if (samples.length >= count) break;
    samples.push(s);
  }
  if (samples.length === 0)
    throw new AntidoteError("USAGE", `${data}: no background images after the first ${skip} samples.`);
  return { x: imageBatch(samples, model.inputShape), n: samples.length };
}
