// The evidence pack on a real ledger (fixture.ts): its claims link the events that prove them
// (seq and hash), what was not done is stated as a gap, the OSCAL document validates against
// NIST's published schema (and a broken one does not), `verifyEvidencePack` accepts the pack
// as written and refuses each attack — an edited claim, an edited HTML, a swapped event hash
// signed by an insider, a pack from another ledger, a truncated ledger — naming what failed.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import addFormatsModule from "ajv-formats";
import BetterSqlite3 from "better-sqlite3";
import { OpenAPIHono } from "@hono/zod-openapi";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registerEvidence } from "../../src/cli/commands/evidence.js";
import {
  buildEvidencePack,
  evidenceHtml,
  oscalAssessmentResults,
  PACK_FILES,
  verifyEvidencePack,
  writeEvidencePack,
  type EvidencePack,
} from "../../src/evidence/index.js";
import { openLedger, openLedgerReader } from "../../src/ledger/index.js";
import { errorResponse } from "../../src/server/errors.js";
import { evidenceRoutes } from "../../src/server/routes/evidence.js";
import type { AppEnv } from "../../src/server/types.js";
import { hasFashionMnist } from "../helpers/real-data.js";
import { evidenceLedger, type EvidenceLedger } from "./fixture.js";

const SCHEMA = join(import.meta.dirname, "../fixtures/schemas/oscal/oscal_assessment-results_schema.json");
// ajv-formats is CommonJS: its plugin is both module.exports and module.exports.default.
const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv }).default;

function oscalValidator() {
  const ajv = new Ajv({ strict: false, allErrors: false });
  addFormats(ajv);
  return ajv.compile(JSON.parse(readFileSync(SCHEMA, "utf8")) as object);
}

const describeData = hasFashionMnist() ? describe : describe.skip;

// One ledger for the whole file: building it (ingest, scan) is the slow part.
let shared: Promise<EvidenceLedger> | undefined;
function sharedLedger(): Promise<EvidenceLedger> {
  shared ??= evidenceLedger();
  return shared;
}
afterAll(async () => {
  if (shared === undefined) return;
  const t = await shared;
  await t.ledger.close();
  rmSync(t.dir, { recursive: true, force: true });
});

describeData("evidence pack", () => {
  let t: EvidenceLedger;
  let pack: EvidencePack;
  let out: string;

  beforeAll(async () => {
    t = await sharedLedger();
    pack = await buildEvidencePack(
      t.ledger,
      { model: t.modelDigest.slice(0, 12) },
      { now: new Date("2026-12-08T00:00:00Z") },
    );
    out = join(t.dir, "pack");
    await writeEvidencePack(pack, out, t.ledger.signer);
  }, 60_000);

  const control = (id: string) => pack.controls.find((c) => c.id === id)!;
  const links = (id: string) => control(id).claims.flatMap((c) => c.events);

  it("links each claim to the events that prove it, by seq and hash", () => {
    expect(pack.subject).toMatchObject({
      type: "model",
      digest: t.modelDigest,
      event: { seq: t.events.model.seq, hash: t.events.model.hash },
    });
    expect(pack.controls.map((c) => c.id)).toHaveLength(9);
    const prov = links("provenance");
    for (const e of [t.events.acmeDelivery, t.events.crawlDelivery, t.events.model])
      expect(prov).toContainEqual({ seq: e.seq, hash: e.hash });
    const signedClaim = control("provenance").claims.find((c) => c.statement.includes("from source acme"))!;
    expect(signedClaim.result).toMatch(/^signature verified, key [0-9a-f]{64}$/);
    expect(control("provenance").gaps).toEqual([expect.stringMatching(/^1 of 2 deliveries were unsigned/)]);

    // The scan's findings: every finding event the scan wrote on lineage samples is linked.
    const scanFindings = t.events.findings.filter(
      (e) => e.kind === "finding.recorded" && e.payload.subjectType === "sample",
    );
    expect(scanFindings.length).toBeGreaterThan(0);
    const detected = new Set(
      [...links("anomaly-detection"), ...links("backdoor-detection")].map((l) => `${l.seq}:${l.hash}`),
    );
    for (const e of scanFindings) expect(detected.has(`${e.seq}:${e.hash}`)).toBe(true);

    expect(links("curation")).toContainEqual({
      seq: t.events.quarantine.seq,
      hash: t.events.quarantine.hash,
    });
    const audit = control("backdoor-detection").claims.find((c) => c.statement.startsWith("Check audit"))!;
    expect(audit.events).toEqual([{ seq: t.events.audit.seq, hash: t.events.audit.hash }]);
    expect(audit.by).toEqual(["carol"]);
    expect(control("curation").claims.find((c) => c.statement.startsWith("Decision"))!.by).toEqual(["alice"]);
  });

  it("states what was not done as gaps, and why a control does not apply", () => {
    expect(control("robust-training")).toMatchObject({
      status: "gap",
      gaps: [expect.stringContaining("No robust training")],
    });
    expect(control("adversarial-validation").status).toBe("gap");
    expect(control("continuous-monitoring").gaps).toEqual([
      expect.stringContaining("No telemetry"),
      expect.stringContaining("No monitor finding"),
    ]);
    expect(control("foundation-model-audit")).toMatchObject({
      status: "not-applicable",
      notApplicable: expect.stringContaining("no base model") as string,
    });
    expect(control("curation").gaps).toContain(
      "No curation policy (policy.adopted) is recorded in the ledger.",
    );
    expect(control("supplier-security").gaps).toEqual([]);
    // Source reputation (policy/reputation.ts), linked to the events that moved it.
    const reputation = control("supplier-security").claims.find((c) =>
      c.statement.startsWith("Source crawl has reputation"),
    );
    expect(reputation?.events).toContainEqual({
      seq: t.events.crawlDelivery.seq,
      hash: t.events.crawlDelivery.hash,
    });
  });

  it("writes a self-contained HTML report with the summary, the gaps and the mapping", () => {
    const html = readFileSync(join(out, PACK_FILES.html), "utf8");
    expect(html).not.toMatch(/<script|<link|src=|url\(|https?:\/\//);
    expect(html).toContain('<h2 id="gaps">');
    expect(html).toContain("AML.M0025");
    expect(html).toContain("LLM04:2025");
    expect(html).toContain(`#${t.events.audit.seq}:${t.events.audit.hash.slice(0, 12)}`);
    // Names and reasons come from suppliers and users: a hostile one is shown, never run.
    const hostile = structuredClone(pack);
    if (hostile.subject.type === "model") hostile.subject.name = '<script>alert(1)</script><a href="x">';
    hostile.controls[0]!.claims[0]!.statement = "<img src=x onerror=alert(1)>";
    const rendered = evidenceHtml(hostile);
    expect(rendered).not.toMatch(/<script|<img|<a href="x"/);
    expect(rendered).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  });

  it("writes an OSCAL assessment-results document that NIST's schema accepts, and a broken one it rejects", () => {
    const validate = oscalValidator();
    const doc = JSON.parse(readFileSync(join(out, PACK_FILES.oscal), "utf8")) as {
      "assessment-results": { results: { findings: { target: { status: { state: string } } }[] }[] };
    };
    expect(validate(doc), JSON.stringify(validate.errors?.slice(0, 3))).toBe(true);
    const findings = doc["assessment-results"].results[0]!.findings;
    expect(findings).toHaveLength(9);
    const broken = structuredClone(doc);
    broken["assessment-results"].results[0]!.findings[0]!.target.status.state = "maybe";
    expect(validate(broken)).toBe(false);
    const noUuid = structuredClone(doc) as { "assessment-results": Record<string, unknown> };
    delete noUuid["assessment-results"].uuid;
    expect(validate(noUuid)).toBe(false);
  });

  it("gives the same OSCAL document for the same ledger, apart from timestamps", async () => {
    const again = await buildEvidencePack(
      t.ledger,
      { model: t.modelDigest },
      { now: new Date("2027-01-01T00:00:00Z") },
    );
    const strip = (p: EvidencePack) =>
      JSON.stringify(oscalAssessmentResults(p)).replace(/"last-modified":"[^"]*"/, "");
    expect(strip(again)).toBe(strip(pack));
  });

  it("verifies against the ledger it was built from", async () => {
    const r = await verifyEvidencePack(out, t.ledger);
    expect(r).toMatchObject({ ok: true, subject: `model:${t.modelDigest}`, keyId: t.ledger.signer.keyId });
    expect(r.files).toEqual([PACK_FILES.json, PACK_FILES.html, PACK_FILES.oscal]);
    expect(r.events).toBeGreaterThan(t.events.findings.length);
  });

  it("refuses an edited claim in evidence.json", async () => {
    const dir = copyPack(out, join(t.dir, "edited-json"));
    const path = join(dir, PACK_FILES.json);
    writeFileSync(path, readFileSync(path, "utf8").replace('"status": "gap"', '"status": "done"'));
    await expect(verifyEvidencePack(dir, t.ledger)).rejects.toMatchObject({
      code: "DIGEST_MISMATCH",
      message: expect.stringContaining(path) as string,
    });
  });

  it("refuses an edited HTML report", async () => {
    const dir = copyPack(out, join(t.dir, "edited-html"));
    const path = join(dir, PACK_FILES.html);
    writeFileSync(path, readFileSync(path, "utf8").replace(">Gap<", ">Done<"));
    await expect(verifyEvidencePack(dir, t.ledger)).rejects.toMatchObject({
      code: "DIGEST_MISMATCH",
      message: expect.stringContaining("evidence.html") as string,
    });
  });

  it("refuses a swapped event hash, even re-signed with the ledger's own key", async () => {
    const forged = structuredClone(pack);
    const claim = forged.controls
      .find((c) => c.id === "curation")!
      .claims.find((c) => c.statement.startsWith("Decision"))!;
    claim.events[0]!.hash = t.events.audit.hash;
    const dir = join(t.dir, "swapped");
    await writeEvidencePack(forged, dir, t.ledger.signer);
    await expect(verifyEvidencePack(dir, t.ledger)).rejects.toMatchObject({
      code: "DIGEST_MISMATCH",
      message: expect.stringContaining(`event #${t.events.quarantine.seq}`) as string,
    });
  });

  it("refuses a pack built from another ledger", async () => {
    const other = await openLedger({ location: join(t.dir, "other", "ledger.db") });
    try {
      await expect(verifyEvidencePack(out, other)).rejects.toMatchObject({ code: "KEY_UNTRUSTED" });
    } finally {
      await other.close();
    }
  });

  it("refuses the pack against a truncated copy of its ledger", async () => {
    const copy = join(t.dir, "truncated.db");
    // A consistent copy (the ledger runs in WAL mode), then the attacker's edit on the copy.
    const source = new BetterSqlite3(t.location, { readonly: true });
    source.prepare("VACUUM INTO ?").run(copy);
    source.close();
    const db = new BetterSqlite3(copy);
    const last = t.events.audit.seq;
    db.prepare("DELETE FROM events WHERE seq >= ?").run(last - 1);
    db.prepare("DELETE FROM checkpoints WHERE seq >= ?").run(last - 1);
    db.close();
    const reader = await openLedgerReader({ location: copy });
    try {
      await expect(verifyEvidencePack(out, reader)).rejects.toMatchObject({
        code: "LEDGER_TAMPERED",
        message: expect.stringMatching(/has only \d+ events: the ledger was truncated/) as string,
      });
    } finally {
      await reader.close();
    }
  });

  it("builds a dataset version's pack, where the model-only controls do not apply", async () => {
    const ds = await buildEvidencePack(t.ledger, { dataset: t.crawlVersion });
    expect(ds.subject).toMatchObject({ type: "dataset", version: t.crawlVersion });
    expect(ds.lineage.sources.map((s) => s.name)).toEqual(["crawl"]);
    expect(ds.controls.find((c) => c.id === "continuous-monitoring")!.status).toBe("not-applicable");
    expect(ds.controls.find((c) => c.id === "provenance")!.claims.flatMap((c) => c.events)).toContainEqual({
      seq: t.events.crawlDelivery.seq,
      hash: t.events.crawlDelivery.hash,
    });
  });

  it("refuses an unknown model or version by name, writing nothing", async () => {
    await expect(buildEvidencePack(t.ledger, { model: "deadbeef" })).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining("deadbeef") as string,
    });
    await expect(buildEvidencePack(t.ledger, { dataset: "no-such-version" })).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining("no-such-version") as string,
    });
    const dir = join(t.dir, "no-pdf");
    await expect(
      writeEvidencePack(pack, dir, t.ledger.signer, { pdf: true, chromium: join(t.dir, "no-chromium") }),
    ).rejects.toMatchObject({
      code: "FILE_NOT_FOUND",
      message: expect.stringContaining("apt-get install chromium") as string,
    });
    expect(existsSync(dir)).toBe(false);
  });

  it.runIf(existsSync("/usr/bin/chromium"))(
    "renders the PDF with headless Chromium, signed like the rest",
    async () => {
      const dir = join(t.dir, "with-pdf");
      await writeEvidencePack(pack, dir, t.ledger.signer, { pdf: true });
      expect(readFileSync(join(dir, PACK_FILES.pdf)).subarray(0, 5).toString()).toBe("%PDF-");
      expect((await verifyEvidencePack(dir, t.ledger)).files).toContain(PACK_FILES.pdf);
    },
    60_000,
  );
});

describeData("antidote evidence (the CLI shell)", () => {
  // Registered on a bare commander program: the same command `antidote` runs once main.ts
  // registers it, exercised without a build.
  it("writes the pack with --model, verifies it with `evidence verify`, and refuses --model with --dataset", async () => {
    const t = await sharedLedger();
    const out = join(t.dir, "cli-pack");
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      await run(["evidence", "--model", t.modelDigest.slice(0, 8), "--out", out, "--ledger", t.location]);
      expect(existsSync(join(out, PACK_FILES.envelope))).toBe(true);
      expect(stderr.mock.calls.map((c) => String(c[0])).join("")).toContain(
        "evidence: judging the nine controls",
      );
      await run(["evidence", "verify", out, "--ledger", t.location]);
      expect(stdout.mock.calls.map((c) => String(c[0])).join("")).toMatch(
        /^ok: .* all \d+ linked events are in the ledger/,
      );
      await expect(
        run([
          "evidence",
          "--model",
          "abcd",
          "--dataset",
          "v",
          "--out",
          join(t.dir, "x"),
          "--ledger",
          t.location,
        ]),
      ).rejects.toMatchObject({
        code: "USAGE",
        message: expect.stringContaining("exactly one of --model") as string,
      });
      expect(existsSync(join(t.dir, "x"))).toBe(false);
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
  });
});

describeData("GET /v1/evidence", () => {
  // The route mounted as app.ts mounts routes, behind a reader token's identity.
  function app(ledger: EvidenceLedger["ledger"], role: "reader" | "agent" = "reader") {
    const a = new OpenAPIHono<AppEnv>();
    a.onError((e, c) => errorResponse(c, e, () => undefined));
    a.use("*", async (c, next) => {
      c.set("auth", { tokenId: "t", principal: "rita", role, source: null, expiresAt: null });
      await next();
    });
    a.route("/v1", evidenceRoutes(ledger));
    return a;
  }

  it("answers the pack's JSON for a model, 404 for an unknown one, 400 without a subject, 403 for an agent", async () => {
    const t = await sharedLedger();
    const ok = await app(t.ledger).request(`/v1/evidence?model=${t.modelDigest.slice(0, 10)}`);
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as EvidencePack;
    expect(body.subject).toMatchObject({ type: "model", digest: t.modelDigest });
    expect(body.controls).toHaveLength(9);
    const missing = await app(t.ledger).request("/v1/evidence?model=deadbeef");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
    expect((await app(t.ledger).request("/v1/evidence")).status).toBe(400);
    expect((await app(t.ledger, "agent").request(`/v1/evidence?dataset=${t.crawlVersion}`)).status).toBe(403);
  });
});

async function run(args: string[]): Promise<void> {
  const program = new Command().exitOverride();
  registerEvidence(program);
  await program.parseAsync(args, { from: "user" });
}

function copyPack(from: string, to: string): string {
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true });
  for (const name of [PACK_FILES.json, PACK_FILES.html, PACK_FILES.oscal, PACK_FILES.envelope])
    copyFileSync(join(from, name), join(to, name));
  return to;
}
