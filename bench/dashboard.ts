// The dashboard on a large ledger: first paint, first contentful paint and the time until the
// page's data is on screen, for the Overview, the ranked Sources list, one Source (with its
// blast radius graph) and a 60,000-sample version's page, measured in headless Chromium
// (Debian's, driven by playwright-core) against a local `antidote serve`:
//   npm run bench:dashboard [-- --sources 1000 --samples 60000 --runs 3]
// The ledger: --sources sources each delivering --samples/--sources real Fashion-MNIST images
// (each delivery its own version), all of them merged into one version of --samples members,
// two scans' findings on 1 % and 2 % of the images, and a model trained on the merged version.
// Each page is loaded --runs times in a fresh browser context (no cache, token already in
// the tab's sessionStorage) and the median is printed. Target (issue 24): first paint ≤ 1 s.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createToken } from "../src/auth/tokens.js";
import { openLedger, type LedgerEventInput } from "../src/ledger/index.js";
import { launchBrowser, serve } from "../test/dashboard/fixture.js";
import {
  deliveryEvents,
  finding,
  model,
  realSamples,
  sourceAdded,
  versionEvents,
} from "../test/ledger/events.js";

const { values: args } = parseArgs({
  options: {
    sources: { type: "string", default: "1000" },
    samples: { type: "string", default: "60000" },
    runs: { type: "string", default: "3" },
  },
});
const SOURCES = Number(args.sources);
const SAMPLES = Number(args.samples);
const RUNS = Number(args.runs);
const name = (i: number) => `supplier-${String(i).padStart(4, "0")}`;

const dir = mkdtempSync(join(tmpdir(), "antidote-bench-dashboard-"));
const location = join(dir, "ledger.db");
try {
  const t0 = performance.now();
  const samples = realSamples(SAMPLES);
  const ledger = await openLedger({ location, actor: "bench" });
  const perSource = Math.ceil(SAMPLES / SOURCES);
  await ledger.append(
    Array.from({ length: SOURCES }, (_, i) => sourceAdded(name(i), i % 5 === 0 ? "contractor" : "supplier")),
  );
  // Fifty deliveries per append: one append per delivery would measure the ledger's fsyncs.
  for (let i = 0; i < SOURCES; i += 50) {
    const events: LedgerEventInput[] = [];
    for (let k = i; k < Math.min(SOURCES, i + 50); k++) {
      const own = samples.slice(k * perSource, (k + 1) * perSource);
      if (own.length > 0)
        events.push(
          ...deliveryEvents({ deliveryId: `d-${k}`, source: name(k), samples: own, version: `${name(k)}@1` }),
        );
    }
    await ledger.append(events);
  }
  const all = [...new Set(samples.map((s) => s.digest))];
  await ledger.append(versionEvents("train@1", all, null, 5000, "merge"));
  await ledger.append(all.filter((_, i) => i % 100 === 7).map((d) => finding(d, 0.9)));
  await ledger.append(all.filter((_, i) => i % 50 === 7).map((d) => finding(d, 0.95, "backdoor")));
  await ledger.append([model("ab".repeat(32), ["train@1"])]);
  const token = (await createToken(ledger, { principal: "bench", role: "analyst" })).token;
  await ledger.close();
  const seeded = (performance.now() - t0) / 1000;

  const server = await serve(location);
  const browser = await launchBrowser();
  const pages: { page: string; path: string; ready: string }[] = [
    { page: "Overview", path: "/", ready: "text=Sources by risk" },
    { page: "Sources (ranked, page 1 of 20)", path: "/sources", ready: "table >> text=supplier-" },
    {
      page: `Source ${name(1)} (blast radius)`,
      path: `/sources/${name(1)}`,
      ready: "[data-testid=blast-radius-list]",
    },
    {
      page: `Version train@1 (${SAMPLES.toLocaleString("en")} members)`,
      path: "/versions/train%401",
      ready: "[data-testid=members] tbody tr",
    },
  ];
  const rows: string[][] = [];
  try {
    for (const p of pages) {
      const fp: number[] = [];
      const fcp: number[] = [];
      const ready: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        await context.addInitScript(`sessionStorage.setItem("antidote.token", ${JSON.stringify(token)})`);
        const page = await context.newPage();
        await page.goto(`${server.url}${p.path}`);
        await page.locator(p.ready).first().waitFor({ timeout: 60_000 });
        const t = await page.evaluate<{ fp: number; fcp: number; now: number }>(
          `(() => { const e = Object.fromEntries(performance.getEntriesByType("paint").map((x) => [x.name, x.startTime]));
             return { fp: e["first-paint"] ?? NaN, fcp: e["first-contentful-paint"] ?? NaN, now: performance.now() }; })()`,
        );
        fp.push(t.fp);
        fcp.push(t.fcp);
        ready.push(t.now);
        await context.close();
      }
      rows.push([
        p.page,
        ms(median(fp)),
        ms(median(fcp)),
        ms(median(ready)),
        median(fp) <= 1000 ? "yes" : "NO",
      ]);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  // The API calls behind those pages, timed alone (the server's answer, as a client sees it).
  const calls = [
    "/v1/overview",
    "/v1/risk/sources?limit=50",
    `/v1/sources/${name(1)}/risk`,
    `/v1/sources/${name(1)}/blast-radius`,
    "/v1/versions/train%401/summary",
    "/v1/versions/train%401/members?limit=100",
    `/v1/versions/train%401/members?limit=100&cursor=${[...all].sort()[SAMPLES - 101] ?? ""}`,
  ];
  const api: string[][] = [];
  const restarted = await serve(location);
  try {
    for (const path of calls) {
      const times: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const t = performance.now();
        const response = await fetch(`${restarted.url}${path}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        await response.text();
        if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
        times.push(performance.now() - t);
      }
      api.push([path.replace(/cursor=[0-9a-f]+/, "cursor=<last page>"), ms(median(times))]);
    }
  } finally {
    await restarted.stop();
  }
  console.log(
    `\nDashboard on a ledger of ${SOURCES.toLocaleString("en")} sources and a ${SAMPLES.toLocaleString("en")}-sample version (seeded in ${seeded.toFixed(0)} s); median of ${RUNS} cold loads, headless Chromium, local server:\n`,
  );
  table(["page", "first paint", "first contentful paint", "data on screen", "first paint ≤ 1 s"], rows);
  console.log(`\nThe API calls behind them, median of ${RUNS}:\n`);
  table(["call", "time"], api);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function ms(x: number): string {
  return `${Math.round(x)} ms`;
}

function table(head: string[], body: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  console.log(line(head));
  console.log(`| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`);
  for (const r of body) console.log(line(r));
}
