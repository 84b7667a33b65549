// Split-view poisoning check against a real HTTP server on 127.0.0.1 serving real
// SpamAssassin emails. The server plays the attacker who took over the domain after the
// index was made: it changes some emails, drops some, moves some (redirects, which must
// still verify) and stalls one. Expected hashes are computed here with node:crypto over the
// bytes the server serves at index time, independently of the code under test.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runWebVerify } from "../../src/cli/commands/web.js";
import { EXIT } from "../../src/cli/exit-codes.js";
import { openDataset } from "../../src/data/open.js";
import { AntidoteError } from "../../src/errors.js";
import {
  countUrlCheck,
  emptyUrlIndexSummary,
  normalizeSha256,
  urlCheckFinding,
  verifyUrlIndex,
  type UrlCheck,
  type UrlIndexOptions,
} from "../../src/provenance/web.js";
import { VERSION } from "../../src/version.js";

const N = 200;
const CHANGED = [7, 42, 99, 150, 199]; // split view: different content now
const GONE = [3, 120]; // 404
const MOVED = [10, 11, 12]; // redirected to the same content (one hop, two hops, absolute Location)
const STALLED = [77]; // never answers
const SHORT_TIMEOUT = 2000;

let server: Server;
let base: string;
let dir: string;
let emails: { id: string; body: Buffer; sha256: string }[] = [];
let inFlight = 0;
let maxInFlight = 0;
const stalled: ServerResponse[] = [];

const sha256 = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");
const poisoned = (n: number): Buffer =>
  Buffer.concat([emailAt(n).body, Buffer.from("\n\nP.S. reply to claim your prize: qzv9k\n")]);

function emailAt(n: number): { id: string; body: Buffer; sha256: string } {
  const e = emails[n];
  if (e === undefined) throw new Error(`no email ${n}`);
  return e;
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  res.on("close", () => inFlight--);
  const url = new URL(req.url ?? "/", base);
  const [, route, arg = ""] = url.pathname.split("/");
  const n = Number(arg);
  const send = (body: Buffer) => {
    res.writeHead(200, { "content-type": "message/rfc822", "content-length": body.length });
    res.end(body);
  };
  switch (route) {
    case "mail":
      if (CHANGED.includes(n)) return send(poisoned(n));
      if (GONE.includes(n)) {
        res.writeHead(404).end("gone");
        return;
      }
      if (STALLED.includes(n)) {
        stalled.push(res);
        return;
      }
      if (n === MOVED[0]) res.writeHead(302, { location: `/moved/${n}` }).end();
      else if (n === MOVED[1]) res.writeHead(301, { location: `/hop/${n}` }).end();
      else if (n === MOVED[2]) res.writeHead(307, { location: `${base}/moved/${n}` }).end();
      else send(emailAt(n).body);
      return;
    case "hop":
      res.writeHead(302, { location: `../moved/${n}` }).end();
      return;
    case "moved":
      return send(emailAt(n).body);
    case "chain": // /chain/k redirects k more times, then serves email 0
      if (n > 0) res.writeHead(302, { location: `/chain/${n - 1}` }).end();
      else send(emailAt(0).body);
      return;
    case "slow":
      setTimeout(() => send(emailAt(n).body), 25);
      return;
    case "big": // 1 MiB, chunked, no Content-Length: only counting tells the size
      res.writeHead(200);
      streamBytes(res, 1 << 20);
      return;
    case "big-declared":
      res.writeHead(200, { "content-length": 1 << 20 });
      streamBytes(res, 1 << 20);
      return;
    default:
      res.writeHead(404).end();
  }
}

function streamBytes(res: ServerResponse, total: number): void {
  let sent = 0;
  const more = () => {
    while (sent < total && !res.destroyed) {
      sent += 16384;
      if (!res.write(Buffer.alloc(16384, 0x61))) return void res.once("drain", more);
    }
    res.end();
  };
  more();
}

beforeAll(async () => {
  const data = await openDataset("spamassassin");
  for await (const s of data.samples()) {
    const body = Buffer.from(s.text ?? "", "utf8");
    emails.push({ id: s.id, body, sha256: sha256(body) });
    if (emails.length === N) break;
  }
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  base = `http://127.0.0.1:${address.port}`;
  dir = mkdtempSync(join(tmpdir(), "antidote-web-"));
});

afterAll(async () => {
  for (const res of stalled) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
  emails = [];
});

beforeEach(() => {
  maxInFlight = inFlight;
});

async function verifyAll(path: string, options: UrlIndexOptions = {}): Promise<UrlCheck[]> {
  const out: UrlCheck[] = [];
  for await (const check of verifyUrlIndex(path, options)) out.push(check);
  return out;
}

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function csvIndex(name: string): string {
  const rows = emails.map((e, n) => `${e.id},${base}/mail/${n},${e.sha256}`);
  return write(name, ["id,url,sha256", ...rows].join("\n") + "\n");
}

const ids = (checks: UrlCheck[], status: UrlCheck["status"]) =>
  checks
    .filter((c) => c.status === status)
    .map((c) => c.id)
    .sort();

async function failure(p: Promise<unknown>): Promise<AntidoteError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AntidoteError) return e;
    throw e;
  }
  throw new Error("expected an AntidoteError");
}

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

describe("verifyUrlIndex against a split-view server", () => {
  it("finds exactly the changed emails in a CSV index; the dropped and stalled ones are unreachable", async () => {
    const progress: [number, number | undefined][] = [];
    const checks = await verifyAll(csvIndex("index.csv"), {
      timeoutMs: SHORT_TIMEOUT,
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(checks).toHaveLength(N);
    expect(new Set(checks.map((c) => c.id)).size).toBe(N);
    const byId = (n: number) => checks.find((c) => c.id === emailAt(n).id);
    expect(ids(checks, "mismatch")).toEqual(CHANGED.map((n) => emailAt(n).id).sort());
    expect(ids(checks, "unreachable")).toEqual([...GONE, ...STALLED].map((n) => emailAt(n).id).sort());
    expect(ids(checks, "match")).toHaveLength(N - CHANGED.length - GONE.length - STALLED.length);
    for (const n of MOVED) expect(byId(n)?.status).toBe("match");

    for (const n of CHANGED) {
      const c = byId(n);
      expect(c).toMatchObject({ expected: emailAt(n).sha256, actual: sha256(poisoned(n)), httpStatus: 200 });
      expect(c?.bytes).toBe(poisoned(n).length);
    }
    for (const n of GONE)
      expect(byId(n)).toMatchObject({ httpStatus: 404, actual: null, error: "HTTP 404 Not Found" });
    expect(byId(STALLED[0] ?? -1)).toMatchObject({
      httpStatus: null,
      error: `timed out after ${SHORT_TIMEOUT} ms`,
    });
    for (const c of checks.filter((x) => x.status === "match")) expect(c.actual).toBe(c.expected);

    const summary = checks.reduce(countUrlCheck, emptyUrlIndexSummary());
    expect(summary).toEqual({ total: N, match: 192, mismatch: 5, unreachable: 3, tooLarge: 0, invalid: 0 });
    expect(progress.map(([d]) => d)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(progress.every(([, t]) => t === undefined)).toBe(true);
  });

  it("turns the checks into ledger findings: mismatch scores 1, unverifiable 0.3, a match none", async () => {
    const checks = await verifyAll(csvIndex("findings.csv"), { timeoutMs: SHORT_TIMEOUT });
    const findings = checks.map(urlCheckFinding).filter((f) => f !== undefined);
    expect(findings).toHaveLength(CHANGED.length + GONE.length + STALLED.length);
    for (const c of checks.filter((x) => x.status === "match")) expect(urlCheckFinding(c)).toBeUndefined();
    const n = CHANGED[0] ?? 0;
    const mismatch = findings.find((f) => f.subjectId === emailAt(n).id);
    expect(mismatch).toEqual({
      subjectType: "sample",
      subjectId: emailAt(n).id,
      kind: "split-view-mismatch",
      score: 1,
      evidence: {
        url: `${base}/mail/${n}`,
        expected: emailAt(n).sha256,
        actual: sha256(poisoned(n)),
        httpStatus: 200,
        status: "mismatch",
        bytes: poisoned(n).length,
      },
      check: "web-verify",
      checkVersion: VERSION,
    });
    const gone = findings.find((f) => f.subjectId === emailAt(GONE[0] ?? 0).id);
    expect(gone).toMatchObject({
      kind: "web-unverifiable",
      score: 0.3,
      subjectType: "sample",
      evidence: { httpStatus: 404, actual: null, expected: emailAt(GONE[0] ?? 0).sha256 },
    });
    expect(
      findings
        .filter((f) => f.kind === "split-view-mismatch")
        .map((f) => f.subjectId)
        .sort(),
    ).toEqual(CHANGED.map((i) => emailAt(i).id).sort());
  });

  it("reads a JSONL index with hashes spelled as hex, sha256:<hex> and base64, ids from row numbers", async () => {
    const spell = (hex: string, n: number) =>
      n % 3 === 0
        ? hex.toUpperCase()
        : n % 3 === 1
          ? `sha256:${hex}`
          : Buffer.from(hex, "hex").toString("base64");
    const lines = emails.map((e, n) =>
      JSON.stringify({ link: `${base}/mail/${n}`, hash: spell(e.sha256, n) }),
    );
    const checks = await verifyAll(write("crawl.jsonl", lines.join("\n") + "\n"), {
      timeoutMs: SHORT_TIMEOUT,
    });
    expect(ids(checks, "mismatch")).toEqual(CHANGED.map((n) => `crawl:${n}`).sort());
    expect(ids(checks, "unreachable")).toEqual([...GONE, ...STALLED].map((n) => `crawl:${n}`).sort());
    expect(ids(checks, "match")).toHaveLength(192);
    for (const c of checks) expect(c.expected).toBe(emailAt(Number(c.id.split(":")[1])).sha256);
  });

  it("reads a Parquet index one row group at a time and reports its row count as the total", async () => {
    const rows = emails.slice(0, 20);
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: "uid", data: rows.map((e) => e.id), type: "STRING" },
        { name: "image_url", data: rows.map((_, n) => `${base}/mail/${n}`), type: "STRING" },
        { name: "expected_sha256", data: rows.map((e) => e.sha256), type: "STRING" },
        { name: "width", data: rows.map(() => null), type: "INT32" },
      ],
      rowGroupSize: 8,
    });
    const path = join(dir, "index.parquet");
    writeFileSync(path, Buffer.from(buffer));
    const totals = new Set<number | undefined>();
    const checks = await verifyAll(path, { onProgress: (_, total) => totals.add(total) });
    expect([...totals]).toEqual([20]);
    expect(ids(checks, "mismatch")).toEqual([emailAt(7).id]);
    expect(ids(checks, "unreachable")).toEqual([emailAt(3).id]);
    expect(ids(checks, "match")).toHaveLength(18);
  });

  it("follows up to 5 redirects and no more", async () => {
    const hex = emailAt(0).sha256;
    const path = write("chain.csv", `url,sha256\n${base}/chain/5,${hex}\n${base}/chain/6,${hex}\n`);
    const checks = await verifyAll(path);
    expect(checks.find((c) => c.url.endsWith("/5"))).toMatchObject({ status: "match", httpStatus: 200 });
    expect(checks.find((c) => c.url.endsWith("/6"))).toMatchObject({
      status: "unreachable",
      httpStatus: 302,
      error: "more than 5 redirects",
    });
  });

  it("stops a body at maxBytes, with or without a Content-Length, and reports it too-large", async () => {
    const hex = emailAt(0).sha256;
    const path = write(
      "big.csv",
      `url,sha256\n${base}/big,${hex}\n${base}/big-declared,${hex}\n${base}/mail/0,${hex}\n`,
    );
    const limit = 64 * 1024;
    const checks = await verifyAll(path, { maxBytes: limit });
    const big = checks.find((c) => c.url.endsWith("/big"));
    expect(big?.status).toBe("too-large");
    expect(big?.bytes).toBeGreaterThan(limit);
    expect(big?.bytes).toBeLessThanOrEqual(2 * limit); // stopped within one socket read of the limit
    expect(checks.find((c) => c.url.endsWith("/big-declared"))).toMatchObject({
      status: "too-large",
      bytes: 0,
      error: `Content-Length ${1 << 20} is over the ${limit}-byte limit`,
    });
    expect(checks.find((c) => c.url.endsWith("/mail/0"))?.status).toBe("match");
    expect(urlCheckFinding(big as UrlCheck)).toMatchObject({ kind: "web-unverifiable", score: 0.3 });
  });

  it("reports malformed rows as invalid-url with file:line, and verifies the rows around them", async () => {
    const hex = (n: number) => emailAt(n).sha256;
    const path = write(
      "messy.csv",
      [
        "id,url,sha256", // 1
        `a,${base}/mail/0,${hex(0)}`, // 2
        `b,ftp://example.org/x,${hex(1)}`, // 3
        `c,not a url,${hex(1)}`, // 4
        `"multi`, // 5: a quoted id over two lines
        `line",${base}/mail/1,abc123`, // 6
        `e,${base}/mail/2,`, // 7
        `f,${base}/mail/2,${hex(2)},extra`, // 8
        `g,http://127.0.0.1:1/refused,${hex(4)}`, // 9
        `h,${base}/mail/4,sha256:${hex(4)}`, // 10
      ].join("\n") + "\n",
    );
    const checks = await verifyAll(path);
    const get = (id: string) => checks.find((c) => c.id === id);
    expect(checks).toHaveLength(8);
    expect(get("a")?.status).toBe("match");
    expect(get("h")?.status).toBe("match");
    expect(get("b")).toMatchObject({ status: "invalid-url", url: "ftp://example.org/x" });
    expect(get("b")?.error).toBe(`${path}:3 field "url": "ftp://example.org/x" is not an http(s) URL.`);
    expect(get("c")?.error).toMatch(new RegExp(`^${path}:4 field "url": "not a url" is not an http`));
    expect(get("multi\nline")).toMatchObject({ status: "invalid-url", expected: "abc123" });
    expect(get("multi\nline")?.error).toMatch(
      new RegExp(`^${path}:5 field "sha256": "abc123" is not a SHA-256`),
    );
    expect(get("e")?.error).toBe(`${path}:7 field "sha256": no expected hash.`);
    expect(get("messy:5")?.error).toBe(`${path}:8: expected 3 fields as in the header, found 4.`);
    expect(get("g")).toMatchObject({ status: "unreachable", httpStatus: null });
    expect(get("g")?.error).toMatch(/fetch failed/);
    expect(checks.reduce(countUrlCheck, emptyUrlIndexSummary())).toMatchObject({
      invalid: 5,
      match: 2,
      unreachable: 1,
    });
  });

  it("names a missing or misspelled column with the closest existing name", async () => {
    const hex = emailAt(0).sha256;
    const typo = write("typo.csv", `ulr,sha256\n${base}/mail/0,${hex}\n`);
    const e1 = await failure(verifyAll(typo));
    expect(e1.code).toBe("COLUMN_MISSING");
    expect(e1.message).toBe(
      `${typo}: no url column (looked for url, image_url, link, uri); name it with --url-column. Did you mean "ulr"? Columns: ulr, sha256.`,
    );
    const good = write("good.csv", `url,sha256\n${base}/mail/0,${hex}\n`);
    const e2 = await failure(verifyAll(good, { hashColumn: "sha265" }));
    expect(e2.code).toBe("COLUMN_MISSING");
    expect(e2.message).toBe(
      `${good}: no column "sha265" for --hash-column. Did you mean "sha256"? Columns: url, sha256.`,
    );
    const none = write("none.jsonl", JSON.stringify({ url: `${base}/mail/0`, checksum_md5: "x" }) + "\n");
    const e3 = await failure(verifyAll(none));
    expect(e3.code).toBe("COLUMN_MISSING");
    expect(e3.message).toMatch(/no hash column \(looked for sha256, hash, expected_sha256, sha256_hash\)/);
    const e4 = await failure(verifyAll(join(dir, "absent.csv")));
    expect(e4.code).toBe("FILE_NOT_FOUND");
    expect(() => verifyUrlIndex(good, { concurrency: 0 })).toThrow(/concurrency/);
  });

  it("never has more than `concurrency` requests in flight on the server, and does use them", async () => {
    const rows = emails.slice(0, 40).map((e, n) => `${base}/slow/${n},${e.sha256}`);
    const path = write("slow.csv", ["url,sha256", ...rows].join("\n") + "\n");
    maxInFlight = 0;
    const four = await verifyAll(path, { concurrency: 4 });
    expect(four.every((c) => c.status === "match")).toBe(true);
    expect(maxInFlight).toBe(4);
    maxInFlight = 0;
    const one = await verifyAll(path, { concurrency: 1 });
    expect(one.map((c) => c.id)).toEqual(rows.map((_, n) => `slow:${n}`)); // one at a time: file order
    expect(maxInFlight).toBe(1);
  });

  it("cancels the downloads in flight when the consumer stops early", async () => {
    const rows = [
      `${base}/mail/0,${emailAt(0).sha256}`,
      ...[1, 2, 3].map(() => `${base}/mail/${STALLED[0]},${"0".repeat(64)}`),
    ];
    const path = write("stop.csv", ["url,sha256", ...rows].join("\n") + "\n");
    const before = stalled.length;
    const started = performance.now();
    let first: UrlCheck | undefined;
    for await (const check of verifyUrlIndex(path, { concurrency: 4, timeoutMs: 60_000 })) {
      first = check;
      break;
    }
    expect(first?.status).toBe("match");
    expect(performance.now() - started).toBeLessThan(10_000);
    await expect.poll(() => inFlight, { timeout: 5000 }).toBe(0);
    expect(stalled.length - before).toBe(3);
  });

  it("keeps verified content in the store under its SHA-256, and nothing else", async () => {
    const store = join(dir, "store");
    const rows = [0, 1, 2, CHANGED[0] ?? 0].map((n) => `${base}/mail/${n},${emailAt(n).sha256}`);
    const checks = await verifyAll(write("store.csv", ["url,sha256", ...rows].join("\n") + "\n"), {
      storeDir: store,
    });
    expect(checks.filter((c) => c.status === "match")).toHaveLength(3);
    expect(readdirSync(store).sort()).toEqual([0, 1, 2].map((n) => emailAt(n).sha256).sort());
    for (const n of [0, 1, 2]) expect(readFileSync(join(store, emailAt(n).sha256))).toEqual(emailAt(n).body);
  });

  it("normalizes the SHA-256 spellings indexes use and rejects the rest", () => {
    const hex = emailAt(0).sha256;
    const bytes = Buffer.from(hex, "hex");
    expect(normalizeSha256(hex.toUpperCase())).toBe(hex);
    expect(normalizeSha256(`sha256:${hex}`)).toBe(hex);
    expect(normalizeSha256(bytes.toString("base64"))).toBe(hex);
    expect(normalizeSha256(bytes.toString("base64url"))).toBe(hex);
    expect(normalizeSha256(`sha256-${bytes.toString("base64")}`)).toBe(hex);
    expect(normalizeSha256(new Uint8Array(bytes))).toBe(hex);
    expect(normalizeSha256(hex.slice(1))).toBeUndefined();
    expect(normalizeSha256(createHash("md5").update("x").digest("hex"))).toBeUndefined();
    expect(normalizeSha256(Buffer.alloc(31).toString("base64"))).toBeUndefined();
    expect(normalizeSha256(42)).toBeUndefined();
  });
});

describe("antidote web verify (runWebVerify)", () => {
  it("exits 6 on a mismatch, lists the mismatching URL and writes the report", async () => {
    const rows = [0, 1, 2, CHANGED[1] ?? 0, GONE[0] ?? 0].map(
      (n) => `${emailAt(n).id},${base}/mail/${n},${emailAt(n).sha256}`,
    );
    const index = write("cli.csv", ["id,url,sha256", ...rows].join("\n") + "\n");
    const out = join(dir, "reports", "cli.json");
    const stdout = new Capture();
    const r = await runWebVerify({ index, out, concurrency: "2", timeoutMs: "5000" }, stdout);
    expect(r.exitCode).toBe(EXIT.verification);
    expect(r.summary).toEqual({ total: 5, match: 3, mismatch: 1, unreachable: 1, tooLarge: 0, invalid: 0 });
    expect(r.mismatches.map((c) => c.url)).toEqual([`${base}/mail/${CHANGED[1]}`]);
    expect(stdout.text).toContain(`${base}/mail/${CHANGED[1]}`);
    expect(stdout.text).toMatch(/mismatch\s+1\n/);
    const report = JSON.parse(readFileSync(out, "utf8")) as {
      index: string;
      checks: UrlCheck[];
      summary: unknown;
    };
    expect(report.index).toBe(index);
    expect(report.summary).toEqual(r.summary);
    expect(report.checks.map((c) => c.status).sort()).toEqual(["mismatch", "unreachable"]);
  });

  it("exits 0 when every URL matches, unless --strict and some URL is unverifiable", async () => {
    const ok = write(
      "ok.csv",
      ["url,sha256", ...[0, 1].map((n) => `${base}/mail/${n},${emailAt(n).sha256}`)].join("\n"),
    );
    const stdout = new Capture();
    const r = await runWebVerify({ index: ok, json: true }, stdout);
    expect(r.exitCode).toBe(EXIT.ok);
    expect((JSON.parse(stdout.text) as { summary: { match: number } }).summary.match).toBe(2);
    const dead = write("dead.csv", `url,sha256\n${base}/mail/${GONE[1]},${emailAt(0).sha256}\n`);
    expect((await runWebVerify({ index: dead, json: true }, new Capture())).exitCode).toBe(EXIT.ok);
    expect((await runWebVerify({ index: dead, json: true, strict: true }, new Capture())).exitCode).toBe(
      EXIT.verification,
    );
    expect(existsSync(join(dir, "ok.json"))).toBe(false);
  });

  it("rejects bad flags with one usage error naming the flag", async () => {
    const index = write("flags.csv", `url,sha256\n${base}/mail/0,${emailAt(0).sha256}\n`);
    const e1 = await failure(runWebVerify({ index, concurrency: "0" }, new Capture()));
    expect(e1.code).toBe("USAGE");
    expect(e1.message).toMatch(/^--concurrency: /);
    const e2 = await failure(runWebVerify({ index, maxBytes: "lots" }, new Capture()));
    expect(e2.message).toMatch(/^--max-bytes: /);
  });
});
