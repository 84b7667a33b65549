// Reading a policy file: YAML parsed with its source positions kept, so every refusal says
// `policy.yaml:LINE:COL: <path>: <problem>` — the place to fix, never the file's contents (a
// YAML parser's own message quotes the offending text, so only its code and position are
// used). The document's identity is the SHA-256 of the file's bytes, exactly as adopted.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import type { z } from "zod";
import { AntidoteError } from "../errors.js";
import { policySchema, type Policy } from "./schema.js";

/** Largest policy file read (a policy is a page of rules, not data). */
export const MAX_POLICY_BYTES = 1 << 20;

export interface LoadedPolicy {
  /** The path as given, for messages. */
  file: string;
  /** Hex SHA-256 of the file's bytes. */
  digest: string;
  policy: Policy;
  /** "sources.acme" → where that rule starts, for messages about it found later. */
  positions: Map<string, { line: number; col: number }>;
}

export async function loadPolicyFile(file: string): Promise<LoadedPolicy> {
  const info = await stat(file).catch(() => undefined);
  if (info === undefined) throw new AntidoteError("FILE_NOT_FOUND", `${file}: no such policy file.`);
  if (!info.isFile()) throw new AntidoteError("INPUT_FORMAT", `${file}: is not a file.`);
  if (info.size > MAX_POLICY_BYTES)
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${file}: ${info.size} bytes, over the ${MAX_POLICY_BYTES}-byte limit of a policy.`,
    );
  return parsePolicy(await readFile(file), file);
}

/** Parse policy bytes; `file` names them in messages. */
export function parsePolicy(bytes: Uint8Array, file: string): LoadedPolicy {
  const digest = createHash("sha256").update(bytes).digest("hex");
  const lineCounter = new LineCounter();
  const text = Buffer.from(bytes).toString("utf8");
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    const pos = lineCounter.linePos(syntax.pos[0]);
    throw refusal(file, pos, "", `YAML syntax error (${syntax.code.toLowerCase().replace(/_/g, " ")})`);
  }
  const parsed = policySchema.safeParse(doc.toJS({ maxAliasCount: 50 }));
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue;
    const extra = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const path = extra === undefined ? issue.path : [...issue.path, extra];
    const node = locate(doc, path, extra !== undefined);
    const pos = lineCounter.linePos(node?.range?.[0] ?? 0);
    const message = extra === undefined ? issue.message : `unknown key (allowed: ${allowedKeys(issue.path)})`;
    throw refusal(file, pos, formatPath(path), message.replace(/^Invalid input: /, ""));
  }
  const positions = new Map<string, { line: number; col: number }>();
  for (const group of ["defaults", "kinds", "sources"]) {
    const node = doc.get(group, true);
    if (group === "defaults" && isMap(node)) positions.set("defaults", linePos(lineCounter, node));
    if (isMap(node))
      for (const pair of node.items)
        if (isScalar(pair.key))
          positions.set(`${group}.${String(pair.key.value)}`, linePos(lineCounter, pair.key));
  }
  return { file, digest, policy: parsed.data, positions };
}

function refusal(
  file: string,
  pos: { line: number; col: number },
  path: string,
  problem: string,
): AntidoteError {
  return new AntidoteError(
    "INPUT_FORMAT",
    `${file}:${pos.line}:${pos.col}: ${path === "" ? "" : `${path}: `}${problem} — the policy was not adopted.`,
  );
}

function linePos(
  lc: LineCounter,
  node: { range?: [number, number, number] | null | undefined },
): { line: number; col: number } {
  return lc.linePos(node.range?.[0] ?? 0);
}

/** The node at `path`, or the nearest one above it that exists; the key's node when `key`. */
function locate(doc: Document, path: readonly PropertyKey[], key: boolean): Node | undefined {
  let node: unknown = doc.contents;
  let found = node as Node | undefined;
  for (const [i, seg] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) return found;
      if (key && i === path.length - 1) return pair.key as Node;
      node = pair.value;
      found = (pair.value ?? pair.key) as Node;
    } else if (isSeq(node) && typeof seg === "number") {
      node = node.items[seg];
      if (node === undefined) return found;
      found = node as Node;
    } else return found;
  }
  return found;
}

function allowedKeys(path: readonly PropertyKey[]): string {
  const top = "apiVersion, name, version, description, defaults, kinds, sources";
  const rule =
    "requireSignature, minReputation, maxFlagRate, requiredScans, autoQuarantine, allowedTransforms";
  if (path.length === 0) return top;
  if (path[0] === "kinds" && path.length === 1)
    return "supplier, contractor, web, fl-client, agent, foundation-model";
  if (path.includes("autoQuarantine")) return "findings, minScore, target";
  return rule;
}

/** ["sources", "acme", "autoQuarantine", 0] → "sources.acme.autoQuarantine[0]". */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`))
    .join("");
}
