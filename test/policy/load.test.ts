// Reading policy files: the shipped example loads; every kind of bad policy — YAML syntax,
// an unknown key, a wrong type, an out-of-range value, contradictory rules — is refused with
// file:line:col and the path of the field at fault, never with the file's text; and a refused
// policy writes nothing to the ledger.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AntidoteError } from "../../src/errors.js";
import { openLedger } from "../../src/ledger/index.js";
import { applyPolicy, loadPolicyFile, ruleFor } from "../../src/policy/index.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "antidote-policy-load-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAD = "apiVersion: antidote.dev/policy/v1\nname: p\nversion: 2\n";

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function refusal(path: string): Promise<AntidoteError> {
  const e = await loadPolicyFile(path).then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AntidoteError);
  return e as AntidoteError;
}

describe("policy files", () => {
  it("loads the shipped example, with its digest and rule precedence", async () => {
    const loaded = await loadPolicyFile("examples/policy.yaml");
    expect(loaded.policy).toMatchObject({ name: "curation", version: "1" });
    expect(loaded.digest).toMatch(/^[0-9a-f]{64}$/);
    const ref = { ...loaded, origin: loaded.file };
    // named (exact) > kind > defaults, field by field
    expect(ruleFor(ref, { name: "legacy-vendor", kind: "supplier" })).toMatchObject({
      minReputation: { value: 0.7, rule: "sources.legacy-vendor" },
      requireSignature: { value: true, rule: "kinds.supplier" },
      requiredScans: { rule: "defaults" },
    });
    expect(ruleFor(ref, { name: "crawl-2026", kind: "web" })).toMatchObject({
      requiredScans: { value: ["near-duplicates", "spectral-signature"], rule: "sources.crawl-*" },
      maxFlagRate: { value: 0.05, rule: "kinds.web" },
    });
  });

  it.each([
    [
      "a YAML syntax error",
      `${HEAD}kinds:\n  supplier: {minReputation: 0.5\n`,
      /:6:1: YAML syntax error \(bad indent\)/,
    ],
    ["a duplicate key", `${HEAD}name: q\n`, /:4:1: YAML syntax error \(duplicate key\)/],
    ["an unknown top-level key", `${HEAD}rulez: {}\n`, /:4:1: rulez: unknown key \(allowed: apiVersion/],
    [
      "an unknown rule key (a typo)",
      `${HEAD}kinds:\n  supplier:\n    minReputaton: 0.5\n`,
      /:6:5: kinds\.supplier\.minReputaton: unknown key \(allowed: requireSignature, minReputation/,
    ],
    [
      "an unknown source kind",
      `${HEAD}kinds:\n  vendor: {}\n`,
      /:5:3: kinds\.vendor: unknown key \(allowed: supplier/,
    ],
    [
      "a wrong type",
      `${HEAD}defaults:\n  requireSignature: "yes"\n`,
      /:5:21: defaults\.requireSignature: expected boolean, received string/,
    ],
    [
      "minReputation over 1",
      `${HEAD}sources:\n  acme:\n    minReputation: 1.5\n`,
      /:6:20: sources\.acme\.minReputation: must be at most 1/,
    ],
    [
      "the wrong apiVersion",
      "apiVersion: antidote.dev/policy/v0\nname: p\nversion: 1\n",
      /:1:13: apiVersion: expected "antidote\.dev\/policy\/v1"/,
    ],
    [
      "one finding kind with two thresholds",
      `${HEAD}defaults:\n  autoQuarantine:\n    - findings: [poisoning-risk]\n      minScore: 0.9\n    - findings: [label-issue, poisoning-risk]\n      minScore: 0.5\n`,
      /:8:31: defaults\.autoQuarantine\[1\]\.findings\[1\]: finding kind "poisoning-risk" is already in autoQuarantine\[0\] with minScore 0\.9: contradictory rules/,
    ],
    [
      "a detector required twice",
      `${HEAD}kinds:\n  web:\n    requiredScans: [near-duplicates, near-duplicates]\n`,
      /:6:38: kinds\.web\.requiredScans\[1\]: "near-duplicates" is listed twice/,
    ],
  ])("refuses %s with file:line:col and the field", async (_, text, message) => {
    const path = write("policy.yaml", text);
    const e = await refusal(path);
    expect(e.code).toBe("INPUT_FORMAT");
    expect(e.message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:`));
    expect(e.message).toMatch(message);
    expect(e.message).toMatch(/the policy was not adopted\.$/);
  });

  it("never quotes the file's text in a syntax error", async () => {
    const secret = "s3cr3t-token-value";
    const e = await refusal(write("leaky.yaml", `${HEAD}description: [${secret}\n`));
    expect(e.message).not.toContain(secret);
  });

  it("refuses two patterns that disagree on a registered source, naming both lines, and writes nothing", async () => {
    const ledger = await openLedger({ location: join(dir, "conflict", "ledger.db"), actor: "test" });
    try {
      await ledger.append([
        {
          kind: "source.added",
          payload: { name: "crawl-eu", kind: "web", trust: 0.5, requireSignature: false, keys: [] },
        },
      ]);
      const path = write(
        "patterns.yaml",
        `${HEAD}sources:\n  crawl-*:\n    maxFlagRate: 0.05\n  "*-eu":\n    maxFlagRate: 0.2\n`,
      );
      const head = (await ledger.status()).events;
      const e = await applyPolicy(ledger, path).then(
        () => undefined,
        (x: unknown) => x as AntidoteError,
      );
      expect(e?.code).toBe("INPUT_FORMAT");
      expect(e?.message).toMatch(
        /patterns\.yaml:7:3: sources\.\*-eu\.maxFlagRate: source "crawl-eu" is also matched by sources\.crawl-\* \(line 5\) with a different maxFlagRate: contradictory rules/,
      );
      expect((await ledger.status()).events).toBe(head);
    } finally {
      await ledger.close();
    }
  });

  it("refuses a missing file and one over the size limit", async () => {
    expect((await refusal(join(dir, "absent.yaml"))).code).toBe("FILE_NOT_FOUND");
    const big = write("big.yaml", `${HEAD}description: "${"x".repeat(1 << 20)}"\n`);
    expect((await refusal(big)).message).toMatch(/over the 1048576-byte limit/);
    expect(readFileSync(big).length).toBeGreaterThan(1 << 20);
  });
});
