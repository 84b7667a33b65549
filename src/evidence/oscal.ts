// The pack as an OSCAL 1.1 assessment-results document, for GRC tools that read OSCAL: one
// result for the pack, one observation per claim (its ledger events as links and relevant
// evidence), one finding per control (satisfied only when the control is "done"; gaps and
// not-applicable reasons in its description and remarks). Every uuid is a version-5 uuid of
// the ledger content it stands for (checkpoint root, subject, control, claim), so the same
// ledger at the same checkpoint yields the same document apart from its timestamps.
// Checked against NIST's published JSON schema in test/evidence (vendored under
// test/fixtures/schemas/oscal/).
import { createHash } from "node:crypto";
import { CONTROLS, controlDefinition } from "./frameworks.js";
import type { Claim, ControlAssessment, EvidencePack } from "./schema.js";

export const OSCAL_VERSION = "1.1.2";

/** Antidote's uuid namespace for OSCAL objects (a fixed random v4 uuid). */
const NAMESPACE = "6f1c9a2e-3b7d-4c58-9e21-a4d0b7c3f915";

type Json = Record<string, unknown>;

export function oscalAssessmentResults(pack: EvidencePack): Json {
  const scope = `${pack.checkpoint.root}|${subjectKey(pack)}`;
  const observations: Json[] = [];
  const findings: Json[] = [];
  pack.controls.forEach((control) => {
    const related: string[] = [];
    control.claims.forEach((claim, i) => {
      const uuid = uuidV5(`${scope}|${control.id}|claim|${i}|${claim.statement}`);
      related.push(uuid);
      observations.push(observation(uuid, control, claim));
    });
    findings.push(finding(scope, control, related));
  });
  const start = earliest(pack) ?? pack.checkpoint.at;
  return {
    "assessment-results": {
      uuid: uuidV5(`${scope}|document`),
      metadata: {
        title: `Antidote evidence pack: ${subjectTitle(pack)}`,
        "last-modified": pack.generatedAt,
        version: `ledger checkpoint #${pack.checkpoint.seq}`,
        "oscal-version": OSCAL_VERSION,
        props: [{ name: "marking", value: "antidote-evidence" }],
        links: [
          {
            href: "evidence.json",
            rel: "alternate",
            "media-type": "application/json",
            text: "Antidote evidence pack (JSON)",
          },
        ],
      },
      "import-ap": {
        href: "evidence.json",
        remarks:
          "No separate OSCAL assessment plan: the plan is the nine Antidote controls, described in evidence.json and docs/evidence.md.",
      },
      results: [
        {
          uuid: uuidV5(`${scope}|result`),
          title: `Training-data poisoning controls for ${subjectTitle(pack)}`,
          description: `What the Antidote ledger records, up to its signed checkpoint #${pack.checkpoint.seq} (tree root ${pack.checkpoint.root}), about the nine poisoning controls for ${subjectTitle(pack)}.`,
          start,
          end: pack.checkpoint.at,
          props: [
            { name: "ledger-checkpoint-seq", ns: NS, value: String(pack.checkpoint.seq) },
            { name: "ledger-checkpoint-root", ns: NS, value: pack.checkpoint.root },
          ],
          "reviewed-controls": {
            "control-selections": [
              {
                description: "The nine Antidote poisoning controls.",
                "include-controls": CONTROLS.map((c) => ({ "control-id": controlToken(c.id) })),
              },
            ],
          },
          ...(observations.length > 0 && { observations }),
          findings,
        },
      ],
    },
  };
}

const NS = "https://antidote.dev/ns/oscal";

function observation(uuid: string, control: ControlAssessment, claim: Claim): Json {
  const links = claim.events.map((e) => ({
    href: eventUri(e.seq, e.hash),
    rel: "evidence",
    text: `ledger event #${e.seq}`,
  }));
  return {
    uuid,
    title: `${control.title}: evidence`,
    description: claim.statement,
    methods: ["EXAMINE"],
    types: ["control-objective"],
    ...(links.length > 0 && { links }),
    "relevant-evidence": [
      {
        description: `${claim.result}${claim.by.length > 0 ? ` (by ${claim.by.join(", ")})` : ""}${claim.outsideLog === undefined ? "" : ` — recorded outside the ledger log: ${claim.outsideLog}`}`,
        ...(claim.events[0] !== undefined && { href: eventUri(claim.events[0].seq, claim.events[0].hash) }),
      },
    ],
    collected: claim.to ?? claim.from ?? "1970-01-01T00:00:00.000Z",
    ...(claim.from !== null && claim.to !== null && { remarks: `Events from ${claim.from} to ${claim.to}.` }),
  };
}

function finding(scope: string, control: ControlAssessment, related: string[]): Json {
  const def = controlDefinition(control.id);
  const gaps = control.gaps.length > 0 ? ` Gaps: ${control.gaps.join(" ")}` : "";
  const na = control.notApplicable !== undefined ? ` Not applicable: ${control.notApplicable}` : "";
  return {
    uuid: uuidV5(`${scope}|${control.id}|finding`),
    title: control.title,
    description: `${def.purpose} Status: ${control.status}.${gaps}${na}`,
    props: [
      { name: "antidote-status", ns: NS, value: control.status },
      ...def.mappings.map((m) => ({
        name: "framework-mapping",
        ns: NS,
        value: `${m.framework} ${m.id}`,
        remarks: m.title,
      })),
    ],
    target: {
      type: "objective-id",
      "target-id": controlToken(control.id),
      title: control.title,
      status: {
        state: control.status === "done" ? "satisfied" : "not-satisfied",
        ...(control.status !== "done" && { reason: control.status === "not-applicable" ? "other" : "fail" }),
      },
    },
    ...(related.length > 0 && { "related-observations": related.map((u) => ({ "observation-uuid": u })) }),
    ...(control.gaps.length > 0 && { remarks: control.gaps.join("\n") }),
  };
}

function controlToken(id: string): string {
  return `antidote-${id}`;
}

/** A URN naming one ledger event by its seq and hash. */
export function eventUri(seq: number, hash: string): string {
  return `urn:antidote:ledger-event:${seq}:${hash}`;
}

function subjectKey(pack: EvidencePack): string {
  return pack.subject.type === "model" ? `model:${pack.subject.digest}` : `dataset:${pack.subject.version}`;
}

function subjectTitle(pack: EvidencePack): string {
  return pack.subject.type === "model"
    ? `model ${pack.subject.name} (${pack.subject.digest.slice(0, 16)}…)`
    : `dataset version ${pack.subject.version} (${pack.subject.name})`;
}

function earliest(pack: EvidencePack): string | undefined {
  const times = pack.controls
    .flatMap((c) => c.claims.flatMap((cl) => (cl.from === null ? [] : [cl.from])))
    .sort();
  return times[0];
}

/** RFC 4122 version-5 (SHA-1, name-based) uuid of `name` in Antidote's namespace. */
export function uuidV5(name: string, namespace = NAMESPACE): string {
  const ns = Buffer.from(namespace.replace(/-/g, ""), "hex");
  const bytes = createHash("sha1").update(ns).update(name, "utf8").digest().subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
