// What the intake tests share, per backend: a fresh ledger with three agents, a supplier, a
// registered agent whose name is path-like ("../x") and a registered model; batches of fresh
// Fashion-MNIST test images; and `refused`, which sends a batch that must be refused with a
// code and checks that nothing was written (no event, no store file, no telemetry_batches
// row) and that the claimed agent's count for that code went up by exactly one. After the
// file's tests, the ledger must verify.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import type { AntidoteErrorCode } from "../../src/errors.js";
import type { Ledger } from "../../src/ledger/index.js";
import { ingestTelemetry, type IngestTelemetryOptions } from "../../src/monitor/intake.js";
import { telemetryRefusalCounts } from "../../src/monitor/refusals.js";
import type { TelemetryUpload } from "../../src/monitor/schema.js";
import { telemetryDir } from "../../src/monitor/store.js";
import { registerModelDigest } from "../../src/provenance/model-digest.js";
import { addSource } from "../../src/provenance/sources.js";
import { antidoteFailure } from "../helpers/errors.js";
import type { Backend, FreshLedger } from "../ledger/backends.js";
import { countEvents } from "../server/helpers.js";
import {
  jsonl,
  makeAgent,
  recordsFor,
  signedBatch,
  testImages,
  windowEnding,
  type BatchSpec,
  type TestAgent,
} from "./telemetry-batches.js";

export const MODEL = "5e".repeat(32);
export const UNREGISTERED = "77".repeat(32);
/** Records per test batch. */
export const N = 16;

export interface IntakeSuite {
  ledger: Ledger;
  fresh: FreshLedger;
  a1: TestAgent;
  a2: TestAgent;
  a3: TestAgent;
  /** A supplier: registered, not an agent. */
  acme: TestAgent;
  /** A registered agent named "../x". */
  dotted: TestAgent;
  now: Date;
  /** The images of the batch built last. */
  lastImages: Sample[];
  /** (agent, code) → refusals expected so far ("" for unregistered names). */
  expected: Map<string, number>;
  /** A batch of N fresh images, valid unless `spec` says otherwise. */
  batch(agent: TestAgent, sequence: number, spec?: Partial<BatchSpec>): TelemetryUpload;
  /** A batch whose third line `edit` changes before the agent signs it. */
  signedEdit(agent: TestAgent, sequence: number, edit: (line: string) => string): TelemetryUpload;
  storeFiles(): string[];
  state(): Promise<{ events: number; files: string[]; batches: number }>;
  /** Send `upload`: it must be refused with `code`, write nothing, and be counted once. */
  refused(
    upload: unknown,
    code: AntidoteErrorCode,
    message: RegExp,
    countedAs: string,
    options?: IngestTelemetryOptions,
  ): Promise<string>;
}

export function useIntake(backend: Backend): IntakeSuite {
  const s = {
    a1: makeAgent("agent-1"),
    a2: makeAgent("agent-2"),
    a3: makeAgent("agent-3"),
    acme: makeAgent("acme"),
    dotted: makeAgent("../x"),
    now: new Date(),
    expected: new Map<string, number>(),
  } as IntakeSuite;
  let nextImage = 0;
  const made = () => new Date(s.now.getTime() - 60_000);

  s.batch = (agent, sequence, spec = {}) => {
    s.lastImages = testImages(nextImage, N);
    const text = jsonl(recordsFor(s.lastImages, made()));
    nextImage += N;
    return signedBatch(agent, { sequence, model: MODEL, text, window: windowEnding(s.now), ...spec });
  };
  s.signedEdit = (agent, sequence, edit) => {
    const lines = jsonl(recordsFor(testImages(nextImage, N), made())).split("\n");
    nextImage += N;
    lines[2] = edit(lines[2] ?? "");
    return signedBatch(agent, {
      sequence,
      model: MODEL,
      text: lines.join("\n"),
      window: windowEnding(s.now),
    });
  };
  s.storeFiles = () => {
    const root = telemetryDir(s.ledger);
    try {
      return readdirSync(root, { recursive: true, encoding: "utf8" })
        .filter((f) => statSync(join(root, f)).isFile())
        .sort();
    } catch {
      return [];
    }
  };
  s.state = async () => ({
    events: await countEvents(s.ledger),
    files: s.storeFiles(),
    batches: (await s.ledger.listTelemetryBatches({ limit: 10_000 })).length,
  });
  s.refused = async (upload, code, message, countedAs, options = {}) => {
    const before = await s.state();
    const failure = await antidoteFailure(ingestTelemetry(s.ledger, upload, options));
    expect(failure.code, failure.message).toBe(code);
    expect(failure.message).toMatch(message);
    expect(await s.state()).toEqual(before);
    const key = `${countedAs}\u0000${code}`;
    s.expected.set(key, (s.expected.get(key) ?? 0) + 1);
    const counts = await telemetryRefusalCounts(s.ledger);
    expect(counts.find((c) => c.agent === countedAs && c.code === code)?.refusals).toBe(s.expected.get(key));
    return failure.message;
  };

  beforeAll(async () => {
    await backend.setup();
    s.fresh = await backend.fresh();
    s.ledger = await s.fresh.open("test");
    for (const agent of [s.a1, s.a2, s.a3])
      await addSource(s.ledger, { name: agent.name, kind: "agent", publicKeysPem: [agent.publicKeyPem] });
    await addSource(s.ledger, { name: "acme", kind: "supplier", publicKeysPem: [s.acme.publicKeyPem] });
    // The ledger accepts any source name; the intake must not let one become a path.
    await addSource(s.ledger, { name: "../x", kind: "agent", publicKeysPem: [s.dotted.publicKeyPem] });
    await registerModelDigest(s.ledger, { digest: MODEL, name: "fm-classifier", trainedOn: [] });
  });

  afterAll(async () => {
    if (s.ledger !== undefined) {
      expect(await s.ledger.verify()).toMatchObject({ ok: true, tableMismatches: [] });
      await s.ledger.close();
    }
    await backend.teardown();
  });
  return s;
}
