// The dashboard in a real browser (headless Debian Chromium via playwright-core) against a
// real `antidote serve` on a free loopback port — the flows of issue 24, in the order a team
// lives them: a supplier uploads a signed delivery and sees it verified, then a tampered one
// and sees it refused with the reason; an analyst runs a scan and watches its progress, opens
// a flagged sample, quarantines the source and sees the blast radius update, and exports a
// clean version; a reader sees no action and its direct API calls get 403. Each page is
// screenshotted to out/screenshots/ (the main ones also to docs/screenshots/ with
// ANTIDOTE_UPDATE_SCREENSHOTS=1).
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fashionModel } from "../helpers/fm-models.js";
import { launchBrowser, screenshot, seed, serve, signIn, type Seeded, type Served } from "./fixture.js";

let seeded: Seeded;
let server: Served;
let browser: Browser;
let page: Page;
let version = "";
let pageErrors: string[] = [];
let modelFile = "";
let modelDigest = "";

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

beforeAll(async () => {
  seeded = await seed(500);
  // The audit and client tests' backdoored MLP (trained once per run, shared through the fixture cache).
  modelFile = (
    await fashionModel({
      arch: "mlp",
      attack: "patch",
      target: 0,
      rate: 0.02,
      train: 8000,
      dir: seeded.dir,
      name: "user-model",
    })
  ).onnxPath;
  modelDigest = createHash("sha256").update(readFileSync(modelFile)).digest("hex");
  server = await serve(seeded.location);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // A Content-Security-Policy violation is a bug of the dashboard: report where it came from.
  // (Browser code is passed as text: the tests are type-checked without the DOM library.)
  await page.addInitScript(
    'document.addEventListener("securitypolicyviolation", (e) => console.error(' +
      "`CSP ${e.violatedDirective} blocked at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber} ${e.sample}`))",
  );
  page.on("console", (m) => {
    // Refusals the flows provoke (401 sign-in, 422 tampered delivery) log as failed loads.
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) pageErrors.push(m.text());
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (seeded !== undefined) rmSync(seeded.dir, { recursive: true, force: true });
});

describe("the dashboard, as a supplier", () => {
  it("signs in with a token and refuses a wrong one", async () => {
    await page.goto(server.url);
    await page.getByLabel("API token").fill("adt_0000000000000000_nope");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect
      .poll(() => page.getByRole("alert").textContent())
      .toMatch(/not valid|not an Antidote API token/);
    await screenshot(page, "sign-in", true);
    await signIn(page, server.url, seeded.tokens.supplier);
    expect(await page.getByTestId("whoami").textContent()).toContain("supplier:acme");
  });

  it("uploads a signed delivery and sees it verified", async () => {
    await page.getByRole("link", { name: "Deliver" }).click();
    await page.getByLabel("Data file(s)").setInputFiles(seeded.delivery.data);
    await page.getByLabel(/Signature/).setInputFiles(seeded.delivery.signature);
    await page.getByRole("button", { name: "Upload and verify" }).click();
    const verified = page.getByTestId("delivery-verified");
    await verified.waitFor({ timeout: 60_000 });
    expect(await verified.textContent()).toMatch(/verified.*Recorded in the ledger.*500 samples/);
    await screenshot(page, "deliver-verified", true);
  });

  it("uploads a tampered delivery and sees it refused with the reason", async () => {
    await page.getByLabel("Data file(s)").setInputFiles(seeded.delivery.tampered);
    await page.getByLabel(/Signature/).setInputFiles(seeded.delivery.signature);
    await page.getByRole("button", { name: "Upload and verify" }).click();
    const refused = page.getByTestId("delivery-refused");
    await refused.waitFor({ timeout: 60_000 });
    const text = (await refused.textContent()) ?? "";
    expect(text).toMatch(/refused/);
    expect(text).toMatch(/DIGEST_MISMATCH|SIGNATURE_INVALID/);
    expect(text).toContain("fashion.parquet");
    await screenshot(page, "deliver-refused", true);
    // Nothing was written: still one delivery from acme.
    const list = (await (await api("GET", "/v1/deliveries?source=acme", seeded.tokens.admin)).json()) as {
      items: { datasetVersion: string }[];
    };
    expect(list.items).toHaveLength(1);
    version = list.items[0]?.datasetVersion ?? "";
    // …but the refusal is kept apart, with its reason, for the supplier and the Overview.
    const refusals = (await (await api("GET", "/v1/deliveries/refused", seeded.tokens.supplier)).json()) as {
      items: { source: string; code: string; message: string }[];
    };
    expect(refusals.items.map((r) => r.source)).toEqual(["acme"]);
    expect(refusals.items[0]?.code).toMatch(/DIGEST_MISMATCH|SIGNATURE_INVALID/);
    expect(refusals.items[0]?.message).toContain("fashion.parquet");
    // A model trained on the delivered version, and one fine-tuned from it: what the blast radius reaches.
    const base = modelDigest;
    expect(
      (
        await api("POST", "/v1/models", seeded.tokens.admin, {
          digest: base,
          name: "classifier-v1",
          trainedOn: [version],
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await api("POST", "/v1/models", seeded.tokens.admin, {
          digest: "cd".repeat(32),
          name: "classifier-v1-ft",
          trainedOn: [],
          baseModel: base,
        })
      ).status,
    ).toBe(201);
    // A fine-tune of the fine-tune, and the base put on the trusted list (a reader may not).
    expect(
      (
        await api("POST", "/v1/models", seeded.tokens.admin, {
          digest: "ef".repeat(32),
          name: "classifier-v1-ft-ft",
          trainedOn: [],
          baseModel: "cd".repeat(32),
        })
      ).status,
    ).toBe(201);
    const trust = { verdict: "trusted", reason: "audited clean" };
    expect((await api("PUT", `/v1/model-reputations/${base}`, seeded.tokens.reader, trust)).status).toBe(403);
    expect((await api("PUT", `/v1/model-reputations/${base}`, seeded.tokens.analyst, trust)).status).toBe(
      200,
    );
  });
});

describe("the dashboard, as an analyst", () => {
  let jobUrl = "";

  it("shows the overview", async () => {
    await signIn(page, server.url, seeded.tokens.analyst);
    await page.getByRole("heading", { name: "Sources by risk" }).waitFor();
    const sources = page.getByRole("region", { name: "Sources ranked by risk" });
    expect(await sources.getByRole("link", { name: "acme" }).count()).toBe(1);
    const deliveries = page.getByRole("region", { name: "Deliveries, verified and refused, newest first" });
    expect(await deliveries.textContent()).toContain("500");
    // The supplier's tampered delivery is listed beside the verified one, refused with its reason.
    const refused = deliveries.getByTestId("refused-delivery");
    expect(await refused.count()).toBe(1);
    const reason = (await refused.textContent()) ?? "";
    expect(reason).toMatch(/acme.*refused.*(DIGEST_MISMATCH|SIGNATURE_INVALID)/);
    expect(reason).toContain("fashion.parquet");
    expect(reason).toContain("acme-ci");
    await page.getByRole("button", { name: "Verify now" }).click();
    await expect
      .poll(() => page.getByTestId("last-verify").textContent(), { timeout: 30_000 })
      .toMatch(/intact/);
    await screenshot(page, "overview-before-scan");
  });

  it("runs a scan job and watches its progress", async () => {
    await page.getByRole("link", { name: "Jobs" }).click();
    await page.getByLabel("Dataset version").selectOption(version);
    await page.getByRole("button", { name: "Start scan" }).click();
    await page.waitForURL(/\/jobs\/job-/);
    jobUrl = page.url();
    // Progress arrives over Server-Sent Events: the log shows the job running, then done.
    await expect
      .poll(() => page.getByTestId("job-log").textContent(), { timeout: 30_000 })
      .toMatch(/running/);
    await screenshot(page, "job-running");
    await expect
      .poll(() => page.getByTestId("job-state").textContent(), { timeout: 150_000, interval: 500 })
      .toBe("done");
    const log = (await page.getByTestId("job-log").textContent()) ?? "";
    expect(log).toMatch(/queued|running/);
    expect(log).toMatch(/done/);
    await page.getByTestId("scan-report").waitFor();
    const flagged = Number((await page.getByTestId("flagged-count").textContent())?.replace(/,/g, ""));
    expect(flagged).toBeGreaterThan(0);
    await page.locator("[data-testid=flagged-samples] img.thumb").first().waitFor();
    await screenshot(page, "job-scan-report", true);
  }, 200_000);

  it("opens a flagged sample", async () => {
    await page.locator("[data-testid=flagged-samples] tbody tr a").first().click();
    await page.waitForURL(/\/samples\/[0-9a-f]{64}/);
    await page.getByTestId("sample-findings").waitFor();
    expect(await page.locator("[data-testid=sample-findings] tbody tr").count()).toBeGreaterThan(0);
    await page.locator("[data-testid=sample-preview] img").waitFor();
    await screenshot(page, "sample", true);
  });

  it("shows the dataset version with its members a page at a time", async () => {
    await page.goto(`${server.url}/versions/${encodeURIComponent(version)}`);
    await page.getByTestId("members").waitFor();
    expect(await page.locator("[data-testid=members] tbody tr").count()).toBe(100);
    const first = await page.locator("[data-testid=members] tbody tr").first().textContent();
    await page.getByRole("button", { name: "Next →" }).click();
    await expect
      .poll(() => page.locator("[data-testid=members] tbody tr").first().textContent())
      .not.toBe(first);
    // Back returns exactly to the first page (the cursors seen are kept), and stops there.
    const previous = page.getByRole("button", { name: "← Previous" });
    await page.getByText("Page 2").waitFor();
    await previous.click();
    await expect.poll(() => page.locator("[data-testid=members] tbody tr").first().textContent()).toBe(first);
    expect(await previous.isDisabled()).toBe(true);
    await page.getByTestId("scan-report").waitFor();
    await screenshot(page, "version", true);
  });

  it("quarantines a source and sees the blast radius and counts update", async () => {
    await page.goto(`${server.url}/sources/acme`);
    const list = page.getByTestId("blast-radius-list");
    await list.waitFor();
    const sourceRow = list.locator('tr[data-node="source:acme"] [data-testid=quarantined-count]');
    expect(await sourceRow.textContent()).toBe("0");
    // The graph reached the model fine-tuned from the one trained on acme's version.
    expect(await list.locator(`tr[data-node="model:${"cd".repeat(32)}"]`).count()).toBe(1);
    await page.getByRole("button", { name: "Quarantine this source" }).click();
    await page
      .getByRole("dialog")
      .getByLabel("Reason (recorded in the ledger)")
      .fill("BadNets patch found by scan");
    await page.getByRole("dialog").getByRole("button", { name: "Quarantine" }).click();
    await expect
      .poll(() => page.getByRole("status").first().textContent())
      .toMatch(/Quarantined source acme/);
    await expect.poll(() => sourceRow.textContent()).toBe("500");
    expect(
      await list.locator(`tr[data-node="version:${version}"] [data-testid=quarantined-count]`).textContent(),
    ).toBe("500");
    await page.locator("[data-testid=blast-radius-graph] canvas").first().waitFor();
    await screenshot(page, "source", true);
    // The decision is in the ledger, with its reason and the analyst as actor.
    const sample = (await (
      await api("GET", "/v1/sources/acme/samples?limit=1", seeded.tokens.reader)
    ).json()) as { items: { digest: string; quarantined: boolean }[] };
    expect(sample.items[0]?.quarantined).toBe(true);
    const trace = (await (
      await api("GET", `/v1/samples/${sample.items[0]?.digest}/trace`, seeded.tokens.reader)
    ).json()) as {
      decisions: { actor: string; reason: string }[];
    };
    expect(trace.decisions).toContainEqual(
      expect.objectContaining({ actor: "ana", reason: "BadNets patch found by scan" }),
    );
  });

  it("exports a clean version without the source", async () => {
    const versionsBefore = await page
      .locator('[data-testid=blast-radius-list] tr[data-node^="version:"]')
      .count();
    await page.getByRole("button", { name: "Export a clean version without it" }).click();
    await page.getByRole("dialog").getByLabel("Reason").fill("rebuild without acme");
    await page.getByRole("dialog").getByRole("button", { name: "Start export" }).click();
    await page.getByRole("link", { name: "Follow the job →" }).click();
    await expect
      .poll(() => page.getByTestId("job-state").textContent(), { timeout: 60_000, interval: 500 })
      .toBe("done");
    const result = JSON.parse((await page.getByTestId("job-result").textContent()) ?? "{}") as {
      version: string;
      excluded: { bySource: number; quarantined: number };
    };
    // Every one of acme's samples is left out (as quarantined: the source was quarantined first).
    expect(result.excluded.bySource + result.excluded.quarantined).toBe(500);
    // The reason asked for is recorded with the request (job.submitted keeps the parameters).
    const exportJob = decodeURIComponent(new URL(page.url()).pathname.split("/").pop() ?? "");
    const submitted = (await (await api("GET", `/v1/jobs/${exportJob}`, seeded.tokens.admin)).json()) as {
      parameters: { reason?: string };
    };
    expect(submitted.parameters.reason).toBe("rebuild without acme");
    await page.goto(`${server.url}/sources/acme`);
    const list = page.getByTestId("blast-radius-list");
    await list.waitFor();
    // The clean version shows as reached from acme's version, with none of acme's samples.
    await expect.poll(() => list.locator('tr[data-node^="version:"]').count()).toBe(versionsBefore + 1);
    expect(await list.locator(`tr[data-node="version:${result.version}"]`).textContent()).toMatch(/0 of 0/);
    expect(jobUrl).toMatch(/\/jobs\//);

    // The overview now shows the scan's findings, the flag rate and the quarantine.
    await page.goto(server.url);
    const findings = page.getByRole("region", { name: "Findings by kind", exact: true });
    await findings.waitFor();
    expect(await findings.textContent()).toContain("poisoning-risk");
    const quarantine = page.locator(".stat", { hasText: "quarantined sources" });
    expect(await quarantine.locator(".stat-value").textContent()).toBe("1");
    await screenshot(page, "overview", true);
  }, 90_000);

  it("audits a model from the Jobs page and shows its verdict, triggers and AI-BOM", async () => {
    await page.goto(`${server.url}/jobs`);
    await page.getByLabel("Model (ONNX)").setInputFiles(modelFile);
    await page.getByLabel("Clean images from version").selectOption(version);
    await page.getByText("Bound the audit's time").click();
    await page.getByLabel(/Only these labels/).fill("0, 8");
    await page.getByLabel(/Most optimisation steps/).fill("40");
    await page.getByRole("button", { name: "Start audit" }).click();
    await page.waitForURL(/\/jobs\/job-/);
    await expect
      .poll(() => page.getByTestId("job-state").textContent(), { timeout: 150_000, interval: 500 })
      .toMatch(/done|failed/);
    expect(await page.getByTestId("job-state").textContent()).toBe("done");
    await page.getByTestId("audit-report").waitFor();
    await page.goto(`${server.url}/models/${modelDigest}`);
    await page.getByTestId("audit-report").waitFor();
    await page.getByRole("link", { name: "classifier-v1-ft", exact: true }).waitFor();
    // Every model built on it, however far removed, with its status; and its reputation.
    await page.getByRole("link", { name: "classifier-v1-ft-ft" }).waitFor();
    expect(await page.getByTestId("descendants").textContent()).toMatch(/depth 2/);
    expect(await page.getByTestId("reputation").textContent()).toMatch(/trusted audited clean/);
    // Two labels inverted: two reversed triggers drawn.
    await expect.poll(() => page.locator("[data-testid=audit-report] img.thumb").count()).toBe(2);
    const download = page.waitForEvent("download");
    await page.getByRole("button", { name: "Download AI-BOM (CycloneDX)" }).click();
    expect((await download).suggestedFilename()).toBe("classifier-v1.cdx.json");
    await screenshot(page, "model", true);
  }, 200_000);

  it("reflows on a narrow window and is keyboard reachable", async () => {
    await page.setViewportSize({ width: 400, height: 800 });
    await page.goto(server.url);
    await page.getByRole("heading", { name: "Sources by risk" }).waitFor();
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(1);
    await screenshot(page, "overview-narrow");
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string | undefined>("document.activeElement?.textContent")).toBe(
      "Skip to content",
    );
    await page.setViewportSize({ width: 1280, height: 900 });
  });
});

describe("the dashboard, as a reader", () => {
  it("shows no action buttons, and the API refuses a reader's direct calls", async () => {
    await signIn(page, server.url, seeded.tokens.reader);
    await page.goto(`${server.url}/sources/acme`);
    await page.getByTestId("blast-radius-list").waitFor();
    await page.getByTestId("source-samples").waitFor(); // everything the buttons depend on is loaded
    expect(await page.getByRole("button", { name: /Quarantine|Release|Export/ }).count()).toBe(0);
    await page.goto(`${server.url}/jobs`);
    await page.getByTestId("jobs").waitFor();
    expect(await page.getByRole("button", { name: /Start/ }).count()).toBe(0);
    await page.goto(`${server.url}/versions/${encodeURIComponent(version)}`);
    await page.getByTestId("members").waitFor();
    await page.getByTestId("scan-report").waitFor();
    expect(await page.getByRole("button", { name: /Quarantine|Start a scan/ }).count()).toBe(0);
    expect(await page.getByRole("checkbox").count()).toBe(0);
    await screenshot(page, "reader-version");

    const decision = await api("POST", "/v1/decisions", seeded.tokens.reader, {
      action: "release",
      sources: ["acme"],
      reason: "x",
    });
    expect(decision.status).toBe(403);
    const job = await api("POST", "/v1/jobs", seeded.tokens.reader, {
      kind: "scan",
      parameters: { version },
    });
    expect(job.status).toBe(403);
    expect(((await job.json()) as { error: { code: string } }).error.code).toBe("FORBIDDEN");
  });

  it("raised no script errors on any page", () => {
    expect(pageErrors).toEqual([]);
    pageErrors = [];
  });
});
