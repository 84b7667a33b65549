// Attacks on the telemetry intake, on SQLite and PostgreSQL: each is performed with batches of
// real Fashion-MNIST test images and must be refused with its reason code, leave no event, no
// store file and no telemetry_batches row behind, and add exactly one to the claimed agent's
// count for that code (intake-suite.ts `refused`): unsigned and forged signatures, another
// agent's key, unknown agents, a supplier, path-like names, a token of another agent, records
// that are not the signed bytes, schema violations (missing, non-summing, NaN or string
// probabilities, unknown fields, an input that is not its digest, a record outside the window),
// batches over the limits, an unregistered model and implausible windows.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAgent } from "./telemetry-batches.js";
import { telemetryRefusalCounts, telemetryRefusals } from "../../src/monitor/refusals.js";
import { TELEMETRY_LIMITS } from "../../src/monitor/schema.js";
import { BACKENDS, enterScratchDir, leaveScratchDir } from "../ledger/backends.js";
import { UNREGISTERED, useIntake } from "./intake-suite.js";
import { CLASSES, testImages } from "./telemetry-batches.js";

beforeAll(() => void enterScratchDir());
afterAll(() => leaveScratchDir());

describe.each(BACKENDS)("telemetry intake attacks on $name", (backend) => {
  const s = useIntake(backend);

  it("refuses unsigned, forged and wrongly signed batches", async () => {
    const good = s.batch(s.a1, 1);
    await s.refused(
      { ...good, envelope: { ...good.envelope, signatures: [] } },
      "SIGNATURE_INVALID",
      /unsigned/,
      "agent-1",
    );
    await s.refused(
      { ...good, envelope: { ...good.envelope, signatures: [{ keyid: s.a1.key.keyId, sig: "" }] } },
      "SIGNATURE_INVALID",
      /signature is empty|unsigned/,
      "agent-1",
    );
    const sig = Buffer.from(good.envelope.signatures[0]?.sig ?? "", "base64");
    sig[5] = (sig[5] ?? 0) ^ 1;
    await s.refused(
      {
        ...good,
        envelope: { ...good.envelope, signatures: [{ keyid: s.a1.key.keyId, sig: sig.toString("base64") }] },
      },
      "SIGNATURE_INVALID",
      /does not verify/,
      "agent-1",
    );
    // agent-2 signs a batch that says it is agent-1's: agent-1's keys do not verify it.
    await s.refused(s.batch(s.a1, 1, { signer: s.a2.key }), "KEY_UNTRUSTED", /not a trusted key/, "agent-1");
    const anonymous = s.batch(s.a1, 1, { signer: s.a2.key });
    anonymous.envelope.signatures[0] = { keyid: "", sig: anonymous.envelope.signatures[0]?.sig ?? "" };
    await s.refused(anonymous, "SIGNATURE_INVALID", /does not verify/, "agent-1");
    // A payload edited after signing (the agent name swapped) no longer verifies.
    const swapped = s.batch(s.a2, 1);
    const statement = JSON.parse(Buffer.from(swapped.envelope.payload, "base64").toString()) as {
      agent: string;
    };
    statement.agent = "agent-1";
    swapped.envelope.payload = Buffer.from(JSON.stringify(statement)).toString("base64");
    await s.refused(swapped, "KEY_UNTRUSTED", /not a trusted key/, "agent-1");
  });

  it("refuses unknown agents, sources that are not agents, path-like names and other agents' tokens", async () => {
    const ghost = makeAgent("ghost-9");
    await s.refused(s.batch(ghost, 0), "SOURCE_UNKNOWN", /not registered/, "");
    await s.refused(s.batch(makeAgent("../../etc"), 0), "SOURCE_UNKNOWN", /not registered/, "");
    await s.refused(s.batch(s.acme, 0), "NOT_AN_AGENT", /supplier, not an agent/, "acme");
    // A registered agent named "../x" signs properly: the statement's name rule refuses it.
    await s.refused(s.batch(s.dotted, 0), "INPUT_FORMAT", /"agent"/, "../x");
    expect(existsSync(join(s.ledger.homeDir, "x"))).toBe(false);
    await s.refused(s.batch(s.a1, 1), "FORBIDDEN", /only as that agent/, "agent-1", {
      boundAgent: "agent-2",
    });
    await s.refused(
      { envelope: { payload: "e30=" }, records: "" },
      "INPUT_FORMAT",
      /not a telemetry upload/,
      "",
    );
    await s.refused(
      {
        ...s.batch(s.a1, 1),
        envelope: { ...s.batch(s.a1, 1).envelope, payloadType: "application/vnd.in-toto+json" },
      },
      "INPUT_FORMAT",
      /payloadType/,
      "agent-1",
    );
  });

  it("refuses records that are not the signed bytes, and signed records that break the schema", async () => {
    const good = s.batch(s.a1, 7);
    const flipped = Buffer.from(good.records);
    flipped[100] = flipped[100] === 0x41 ? 0x42 : 0x41;
    await s.refused({ ...good, records: flipped.toString() }, "DIGEST_MISMATCH", /SHA-256/, "agent-1");
    await s.refused(
      { ...good, records: good.records + good.records.split("\n")[0] + "\n" },
      "DIGEST_MISMATCH",
      /bytes/,
      "agent-1",
    );
    await s.refused(
      s.batch(s.a1, 7, {
        statement: (s) => ({ ...s, records: { ...s.records, count: s.records.count + 1 } }),
      }),
      "ROW_MALFORMED",
      /holds 16 records but the signed statement says 17/,
      "agent-1",
    );
    const line3 = (what: RegExp) => new RegExp(`:3: .*${what.source}`);
    await s.refused(
      s.signedEdit(s.a1, 7, (l) => l.replace(/"output":\{"probs":\[[^\]]*\]\}/, '"output":{}')),
      "ROW_MALFORMED",
      line3(/"output.probs"/),
      "agent-1",
    );
    await s.refused(
      s.signedEdit(s.a1, 7, (l) =>
        l.replace(/"probs":\[[^\]]*\]/, `"probs":[${CLASSES.map(() => 0.5).join(",")}]`),
      ),
      "ROW_MALFORMED",
      line3(/sums to 5.0000, not 1/),
      "agent-1",
    );
    await s.refused(
      s.signedEdit(s.a1, 7, (l) => l.replace('"probs":[', '"probs":[NaN,').replace(/,0\.01\]/, "]")),
      "ROW_MALFORMED",
      line3(/not JSON/),
      "agent-1",
    );
    await s.refused(
      s.signedEdit(s.a1, 7, (l) =>
        l.replace(
          /"probs":\[([^\]]*)\]/,
          (_, p: string) =>
            `"probs":[${p
              .split(",")
              .map((v) => `"${v}"`)
              .join(",")}]`,
        ),
      ),
      "ROW_MALFORMED",
      line3(/"output.probs.0"/),
      "agent-1",
    );
    await s.refused(
      s.signedEdit(s.a1, 7, (l) => l.replace(/^\{/, '{"extra":1,')),
      "ROW_MALFORMED",
      line3(/Unrecognized key/),
      "agent-1",
    );
    const otherDigest = testImages(9_999, 1)[0]?.digest ?? "";
    await s.refused(
      s.signedEdit(s.a1, 7, (l) => l.replace(/"digest":"[0-9a-f]{64}"/, `"digest":"${otherDigest}"`)),
      "ROW_MALFORMED",
      line3(/does not match the input's content/),
      "agent-1",
    );
    const late = new Date(s.now.getTime() + 3_600_000).toISOString();
    await s.refused(
      s.signedEdit(s.a1, 7, (l) => l.replace(/"at":"[^"]*"/, `"at":"${late}"`)),
      "ROW_MALFORMED",
      line3(/outside the batch's window/),
      "agent-1",
    );
  });

  it("refuses batches over the limits, attesting an unregistered model, or with an implausible window", async () => {
    await s.refused(
      { ...s.batch(s.a1, 7), records: "x".repeat(TELEMETRY_LIMITS.maxBytes + 1) },
      "PAYLOAD_TOO_LARGE",
      /over the limit of 67108864 bytes/,
      "agent-1",
    );
    await s.refused(
      s.batch(s.a1, 7, {
        statement: (s) => ({ ...s, records: { ...s.records, count: TELEMETRY_LIMITS.maxRecords + 1 } }),
      }),
      "PAYLOAD_TOO_LARGE",
      /records\.count/,
      "agent-1",
    );
    await s.refused(s.batch(s.a1, 7, { model: UNREGISTERED }), "MODEL_UNKNOWN", /not registered/, "agent-1");
    const hour = 3_600_000;
    const at = (ms: number) => new Date(s.now.getTime() + ms).toISOString();
    for (const [window, why] of [
      [{ start: at(-hour), end: at(hour) }, /in the future/],
      [{ start: at(-9 * 24 * hour), end: at(-8 * 24 * hour) }, /more than 7 days ago/],
      [{ start: at(0), end: at(-hour) }, /ends before it starts/],
      [{ start: at(-30 * hour), end: at(0) }, /spans more than 24 h/],
    ] as const)
      await s.refused(s.batch(s.a1, 7, { window }), "WINDOW_IMPLAUSIBLE", why, "agent-1");
  });

  it("lists refusals newest first without content, and counts them per agent and code", async () => {
    const list = await telemetryRefusals(s.ledger, { agent: "agent-1", limit: 1000 });
    expect(list.length).toBe(
      [...s.expected].filter(([k]) => k.startsWith("agent-1\u0000")).reduce((n, [, v]) => n + v, 0),
    );
    expect(list[0]?.id).toBeGreaterThan(list[list.length - 1]?.id ?? Infinity);
    for (const r of list) expect(r.message.length).toBeLessThanOrEqual(500);
    expect(list.some((r) => r.message.includes("xxxx"))).toBe(false);
    const counts = await telemetryRefusalCounts(s.ledger);
    expect(new Map(counts.map((c) => [`${c.agent}\u0000${c.code}`, c.refusals]))).toEqual(s.expected);
  });
});
