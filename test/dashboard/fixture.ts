// What the dashboard's browser tests share: a ledger seeded as a data/security team would
// have it (two sources, a contractor's CSV delivery already ingested, API tokens of every
// role), a supplier's signed Fashion-MNIST delivery on disk (a Parquet file and its Sigstore
// bundle, made with the library exactly as a supplier makes one) plus a tampered copy, a
// real `antidote serve` (the built CLI) on a free loopback port, and headless Debian
// Chromium driven by playwright-core.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { simulateAttack } from "../../src/attack/index.js";
import { createToken } from "../../src/auth/index.js";
import { memoryDataset, MemoryWriter } from "../../src/data/memory.js";
import { createWriter } from "../../src/data/open.js";
import { openLedger } from "../../src/ledger/index.js";
import { addSource, buildStatement, ingestDelivery, signStatement } from "../../src/provenance/index.js";
import { freePort } from "../helpers/free-port.js";
import { REPO_ROOT } from "../helpers/fixture-cache.js";
import { FASHION_MNIST_CLASSES, fashionMnistSamples } from "../helpers/real-data.js";
import { signedDelivery, supplierKey } from "../server/helpers.js";

export const CHROMIUM = process.env.ANTIDOTE_CHROMIUM ?? "/usr/bin/chromium";
export const SCREENSHOTS = join(REPO_ROOT, "out", "screenshots");
export const DOCS_SCREENSHOTS = join(REPO_ROOT, "docs", "screenshots");

export type Role = "admin" | "analyst" | "reader" | "supplier";

export interface Seeded {
  dir: string;
  location: string;
  tokens: Record<Role, string>;
  /** The supplier's signed delivery and a copy whose content was changed after signing. */
  delivery: { data: string; signature: string; tampered: string; images: number; poisoned: number };
}

/** A ledger with sources acme (supplier) and contractor-b, tokens of every role, and the files to deliver. */
export async function seed(images = 300): Promise<Seeded> {
  const dir = mkdtempSync(join(tmpdir(), "antidote-dashboard-"));
  const location = join(dir, "ledger.db");
  const acme = supplierKey();
  const contractor = supplierKey();
  const ledger = await openLedger({ location, actor: "setup" });
  const tokens = { admin: "", analyst: "", reader: "", supplier: "" };
  try {
    await addSource(ledger, { name: "acme", kind: "supplier", publicKeysPem: [acme.publicKeyPem] });
    await addSource(ledger, {
      name: "contractor-b",
      kind: "contractor",
      publicKeysPem: [contractor.publicKeyPem],
    });
    tokens.admin = (await createToken(ledger, { principal: "root", role: "admin" })).token;
    tokens.analyst = (await createToken(ledger, { principal: "ana", role: "analyst" })).token;
    tokens.reader = (await createToken(ledger, { principal: "rita", role: "reader" })).token;
    tokens.supplier = (await createToken(ledger, { principal: "acme-ci", role: "supplier:acme" })).token;
    // contractor-b's labelled texts, ingested before the dashboard opens.
    const csvDir = join(dir, "contractor");
    mkdirSync(csvDir);
    const csv = await signedDelivery(csvDir, contractor, 60, "labels.csv");
    writeFileSync(join(csvDir, "labels.csv.sigstore.json"), csv.bundle);
    await ingestDelivery(ledger, {
      target: join(csvDir, "labels.csv"),
      source: "contractor-b",
      signaturePath: join(csvDir, "labels.csv.sigstore.json"),
    });
  } finally {
    await ledger.close();
  }

  // acme's delivery: real Fashion-MNIST images, 5 % of them with a BadNets patch relabelled "Bag".
  const writer = new MemoryWriter();
  const truth = await simulateAttack(
    memoryDataset(fashionMnistSamples(images), { classes: [...FASHION_MNIST_CLASSES] }),
    writer,
    { kind: "patch", target: "Bag", rate: 0.05, seed: 3 },
  );
  const deliveryDir = join(dir, "acme");
  mkdirSync(deliveryDir);
  const data = join(deliveryDir, "fashion.parquet");
  const out = await createWriter(data, { format: "parquet", classes: [...FASHION_MNIST_CLASSES] });
  for (const s of writer.samples) await out.write(s);
  await out.close();
  const signature = join(deliveryDir, "fashion.parquet.sigstore.json");
  writeFileSync(signature, JSON.stringify(signStatement(await buildStatement(data), acme.key)));
  // The same name, one byte changed after signing: what a man in the middle delivers.
  const tamperedDir = join(dir, "tampered");
  mkdirSync(tamperedDir);
  const tampered = join(tamperedDir, "fashion.parquet");
  copyFileSync(data, tampered);
  const bytes = readFileSync(tampered);
  const middle = Math.floor(bytes.length / 2);
  bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
  writeFileSync(tampered, bytes);
  return {
    dir,
    location,
    tokens,
    delivery: { data, signature, tampered, images, poisoned: truth.poisoned.length },
  };
}

export interface Served {
  url: string;
  stop(): Promise<void>;
}

/** `node dist/cli/bin.js serve` on a free loopback port, as a user starts it; resolves once it answers. */
export async function serve(location: string): Promise<Served> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      resolve(REPO_ROOT, "dist/cli/bin.js"),
      "serve",
      "--ledger",
      location,
      "--port",
      String(port),
      "--rate",
      "1000/s",
      "--burst",
      "2000",
    ],
    { stdio: ["ignore", "ignore", "pipe"], cwd: REPO_ROOT },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`antidote serve exited (${child.exitCode}): ${stderr}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - started > 30_000) throw new Error(`antidote serve did not answer in 30 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null) return done();
        child.once("exit", () => done());
        child.kill("SIGTERM");
      }),
  };
}

export function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: the dashboard's browser tests drive Debian's Chromium (apt-get install chromium; scripts/setup.sh installs it), or set ANTIDOTE_CHROMIUM to another Chromium.`,
    );
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
}

/** Sign in on the page with `token` and wait for the signed-in shell. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url);
  await page.evaluate("sessionStorage.clear()");
  await page.goto(url);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("whoami").waitFor();
}

/**
 * A full-page screenshot in out/screenshots/<name>.png; the main ones (`docs`) also replace
 * the README's copies in docs/screenshots/, but only when asked (ANTIDOTE_UPDATE_SCREENSHOTS=1):
 * a test run must not change tracked files.
 */
export async function screenshot(page: Page, name: string, docs = false): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  if (docs && process.env.ANTIDOTE_UPDATE_SCREENSHOTS === "1") {
    mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
    copyFileSync(path, join(DOCS_SCREENSHOTS, `${name}.png`));
  }
}
