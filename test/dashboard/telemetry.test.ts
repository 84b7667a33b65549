// The dashboard's Telemetry page in a real browser (headless Debian Chromium via playwright-
// core) against a real `antidote serve` (the built CLI) on a free loopback port, over a ledger
// a deployment would have: three agents sending signed batches of real Fashion-MNIST test
// images through the intake, one batch refused as a replay, and the per-agent anomaly monitor's
// finding on one agent. An analyst sees the flagged agent first (ahead of the one with a
// refusal), the refusal's reason counted and the alert; opens an agent, quarantines one of its
// batches and suspends the model from the page — and the API agrees (the batch is quarantined,
// GET /v1/models/{digest}/status says suspended). A reader sees the fleet but no action, and
// its direct calls get 403.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/index.js";
import { openLedger } from "../../src/ledger/index.js";
import { ingestTelemetry } from "../../src/monitor/intake.js";
import { registerModelDigest } from "../../src/provenance/model-digest.js";
import { addSource } from "../../src/provenance/sources.js";
import {
  jsonl,
  makeAgent,
  recordsFor,
  signedBatch,
  testImages,
  windowEnding,
} from "../monitor/telemetry-batches.js";
import { launchBrowser, screenshot, serve, signIn, type Served } from "./fixture.js";

const MODEL = "c0ffee".repeat(10) + "c0ff";
const AGENTS = ["edge-01", "edge-02", "edge-03"] as const;
const FLAGGED = "edge-02";
const REFUSED = "edge-03";

let dir = "";
let server: Served;
let browser: Browser;
let page: Page;
const tokens = { analyst: "", reader: "" };
const pageErrors: string[] = [];

async function api(method: string, path: string, token: string, body?: unknown): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(method === "GET" ? {} : { "antidote-request-id": crypto.randomUUID() }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** Agent names in the order the agents table shows them. */
async function agentRows(): Promise<string[]> {
  const rows = page.getByTestId("fleet-agents").locator("tbody tr");
  const names: string[] = [];
  for (let i = 0; i < (await rows.count()); i++)
    names.push((await rows.nth(i).getAttribute("data-agent")) ?? "");
  return names;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "antidote-telemetry-page-"));
  const location = join(dir, "ledger.db");
  const ledger = await openLedger({ location, actor: "setup" });
  try {
    const now = new Date();
    await registerModelDigest(ledger, { digest: MODEL, name: "fm-classifier", trainedOn: [] });
    let image = 0;
    for (const name of AGENTS) {
      const agent = makeAgent(name);
      await addSource(ledger, { name, kind: "agent", publicKeysPem: [agent.publicKeyPem] });
      for (const sequence of [0, 1]) {
        const text = jsonl(recordsFor(testImages(image, 12), new Date(now.getTime() - 60_000)));
        image += 12;
        const upload = signedBatch(agent, { sequence, model: MODEL, text, window: windowEnding(now) });
        await ingestTelemetry(ledger, upload, { principal: `${name}-deploy` });
        // edge-03 sends its last batch again: a replay, refused and counted.
        if (name === REFUSED && sequence === 1)
          await expect(
            ingestTelemetry(ledger, upload, { principal: `${name}-deploy` }),
          ).rejects.toMatchObject({
            code: "REPLAYED",
          });
      }
    }
    // What the per-agent anomaly monitor records when an agent's feedback departs from the fleet's.
    await ledger.append([
      {
        kind: "finding.recorded",
        payload: {
          subjectType: "source",
          subjectId: FLAGGED,
          kind: "agent-anomaly",
          score: 12.5,
          evidence: { statistic: "feedback-disagreement", batchId: `${FLAGGED}#1` },
          check: "monitor/agent-anomaly",
          checkVersion: "1",
        },
      },
    ]);
    tokens.analyst = (await createToken(ledger, { principal: "ana", role: "analyst" })).token;
    tokens.reader = (await createToken(ledger, { principal: "rita", role: "reader" })).token;
  } finally {
    await ledger.close();
  }
  server = await serve(location);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe("the Telemetry page", () => {
  it("lists the agents with the flagged one first, the refusal's reason and the monitor's alert", async () => {
    await signIn(page, server.url, tokens.analyst);
    await page.getByRole("link", { name: "Telemetry" }).click();
    await page.getByTestId("fleet-agents").waitFor();
    // Flagged by a monitor first, then the one with a refusal, then the rest.
    expect(await agentRows()).toEqual([FLAGGED, REFUSED, "edge-01"]);
    const refused = page.locator(`tr[data-agent="${REFUSED}"]`);
    expect(await refused.getByTestId("agent-refusals").textContent()).toBe("1: REPLAYED ×1");
    expect(await page.locator(`tr[data-agent="edge-01"]`).getByTestId("agent-refusals").textContent()).toBe(
      "0",
    );
    const alert = page.getByTestId("monitor-alerts").locator("tbody tr");
    expect(await alert.count()).toBe(1);
    const cells = await alert.locator("td").allTextContents();
    expect(cells.slice(1)).toEqual([
      "agent-anomaly",
      "agent-anomaly",
      `agent ${FLAGGED}`,
      "12.50",
      `${FLAGGED}#1`,
    ]);
    await screenshot(page, "telemetry", true);
  });

  it("opens an agent: its refusals by reason, its batches, and quarantines one", async () => {
    await page.locator(`tr[data-agent="${REFUSED}"]`).getByRole("link", { name: REFUSED }).click();
    const detail = page.getByTestId("agent-detail");
    await detail.getByTestId("agent-batches").locator(`tr[data-batch="${REFUSED}#1"]`).waitFor();
    expect(await detail.getByTestId("refusals-by-reason").textContent()).toMatch(/^REPLAYED: 1 \(last /);
    expect(await detail.textContent()).toMatch(/REPLAYED: batch edge-03#1: a replay/);
    await detail
      .locator(`tr[data-batch="${REFUSED}#1"]`)
      .getByRole("button", { name: "Quarantine batch" })
      .click();
    await page
      .getByRole("dialog")
      .getByLabel("Reason (recorded in the ledger)")
      .fill("replayed by a stale client");
    await page.getByRole("dialog").getByRole("button", { name: "Quarantine" }).click();
    await detail.locator(`tr[data-batch="${REFUSED}#1"]`).getByText("quarantined").waitFor();
    const batches = (await (
      await api("GET", `/v1/telemetry/batches?agent=${REFUSED}`, tokens.reader)
    ).json()) as {
      items: { batchId: string; quarantined: boolean }[];
    };
    expect(batches.items.map((b) => [b.batchId, b.quarantined])).toEqual([
      [`${REFUSED}#0`, false],
      [`${REFUSED}#1`, true],
    ]);
  });

  it("suspends the model, and deployments polling its status see it suspended", async () => {
    const before = (await (await api("GET", `/v1/models/${MODEL}/status`, tokens.reader)).json()) as {
      status: string;
    };
    expect(before.status).toBe("active");
    const row = page.locator(`tr[data-model="${MODEL}"]`);
    expect(await row.locator("td").nth(2).textContent()).toBe("6");
    await row.getByRole("button", { name: "Suspend" }).click();
    await page
      .getByRole("dialog")
      .getByLabel("Reason (recorded in the ledger)")
      .fill("edge-02's feedback departs from the fleet");
    await page.getByRole("dialog").getByRole("button", { name: "Suspend" }).click();
    await row.getByRole("button", { name: "Resume" }).waitFor();
    expect(await row.getByTestId("model-status").textContent()).toMatch(
      /suspended.*departs from the fleet \(ana\)/,
    );
    const after = (await (await api("GET", `/v1/models/${MODEL}/status`, tokens.reader)).json()) as {
      status: string;
      reason: string;
      actor: string;
    };
    expect(after).toMatchObject({
      status: "suspended",
      actor: "ana",
      reason: "edge-02's feedback departs from the fleet",
    });
    await screenshot(page, "telemetry-suspended");
  });

  it("shows a reader the fleet without any action, and the server refuses the reader's actions", async () => {
    await signIn(page, server.url, tokens.reader);
    await page.goto(`${server.url}/telemetry?agent=${REFUSED}`);
    await page.getByTestId("agent-batches").locator("tbody tr").first().waitFor();
    expect(await agentRows()).toEqual([FLAGGED, REFUSED, "edge-01"]);
    expect(await page.getByTestId("model-status").textContent()).toMatch(/suspended/);
    expect(await page.getByRole("button", { name: /^(Suspend|Resume)$/ }).count()).toBe(0);
    expect(await page.getByRole("button", { name: /(Quarantine|Release) batch/ }).count()).toBe(0);
    expect((await api("POST", `/v1/models/${MODEL}/resume`, tokens.reader, { reason: "x" })).status).toBe(
      403,
    );
    expect(
      (
        await api("POST", "/v1/telemetry/quarantine", tokens.reader, {
          batches: [`${REFUSED}#0`],
          reason: "x",
        })
      ).status,
    ).toBe(403);
    const fleet = await api("GET", "/v1/telemetry/fleet", tokens.reader);
    expect(fleet.status).toBe(200);
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).toContain("/v1/telemetry/fleet");
    expect(pageErrors).toEqual([]);
  });
});
