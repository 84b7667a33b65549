// The web dashboard's static files (built from web/ by `npm run build` into dist/dashboard/),
// served at / by the same server as the API. The dashboard is a client of the API like any
// other: it holds no secrets and the server trusts nothing it sends.
//
// What a static server must get right, and how:
// - No path leaves the assets directory. The path is decoded once, then refused if it holds
//   a NUL, a backslash, a `.`/`..` segment or a hidden segment, or if it resolves outside the
//   directory (symbolic links included); it is never passed to the file system undecoded.
// - A strict Content-Security-Policy: scripts, styles and connections from this origin only
//   (the API), images also as data:/blob: URLs (sample thumbnails, charts), no framing.
// - Hashed files under /assets/ are cached for a year (their name changes with their
//   content); index.html is revalidated each time, so a new build shows at once.
// - A GET of one of the dashboard's pages (a deep link such as /sources/acme) gets index.html,
//   and the client-side router shows the page; any other unknown path keeps the API's 404.
// - Without a build, a clear plain-text message instead of a crash.
import { existsSync } from "node:fs";
import { readFile, realpath, stat } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { Context, MiddlewareHandler } from "hono";
import { getMimeType } from "hono/utils/mime";

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
};

/** Paths the API owns: never answered with the dashboard, even when no route matches. */
const API_PATHS = /^\/(v1(\/|$)|openapi\.json$|healthz$)/;

/** The dashboard's pages (web/src/main.tsx routes them): / and everything under these. */
const PAGES = /^\/((sources|versions|models|jobs|samples|deliver|telemetry)(\/.*)?)?$/;

const NOT_BUILT =
  "The Antidote dashboard is not built into this installation (dist/dashboard/index.html is missing).\n" +
  "From a source checkout, run `npm run build`; the API under /v1 works without it.\n";

/**
 * Where the built dashboard is: dist/dashboard/ beside the compiled server (dist/server/), or,
 * when the server runs from source (tests, tsx), the checkout's dist/dashboard/.
 */
export function defaultDashboardDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, "..", "dashboard"), resolve(here, "..", "..", "dist", "dashboard")];
  return candidates.find((dir) => existsSync(join(dir, "index.html"))) ?? (candidates[0] as string);
}

/**
 * The dashboard as a middleware: mount it last (`app.use("*", dashboard())`), so it only sees
 * requests no API route answered. It answers GET and HEAD for its files and its pages and
 * passes everything else on (to the API's JSON 404), so it adds no route to the API.
 */
export function dashboard(dir: string = defaultDashboardDir()): MiddlewareHandler {
  const root = resolve(dir);
  return async function dashboard(c, next) {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return next();
    const raw = new URL(c.req.url).pathname;
    if (API_PATHS.test(raw)) return next();
    const path = safePath(raw);
    if (path === undefined) return plain(c, 400, "Bad request: this path is not allowed.\n");
    const file = path === "" ? undefined : await fileUnder(root, path);
    if (file !== undefined) return send(c, file, path.startsWith("assets/"));
    // A missing asset is a 404 (a stale page asking for an old bundle must not get HTML).
    if (path.startsWith("assets/")) return plain(c, 404, "Not found.\n");
    // A page of the single-page app (a deep link, a reload): index.html, and the client's
    // router shows it. Anything else is not the dashboard's.
    if (!PAGES.test(raw)) return next();
    const index = await fileUnder(root, "index.html");
    if (index === undefined) return plain(c, 503, NOT_BUILT);
    return send(c, index, false);
  };
}

/**
 * The request path, decoded, without its leading slash; undefined when it could name
 * something outside the directory or confuse the file system: malformed escapes, NUL or
 * other control characters, backslashes, and empty, `.`, `..` or hidden segments.
 */
export function safePath(pathname: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (!decoded.startsWith("/")) return undefined;
  const rest = decoded.slice(1);
  if (rest === "") return "";
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f\\:]/.test(rest)) return undefined;
  const segments = rest.split("/");
  // A trailing slash is a page path (/sources/); an empty segment elsewhere is not.
  if (segments[segments.length - 1] === "") segments.pop();
  if (segments.some((s) => s === "" || s.startsWith("."))) return undefined;
  return segments.join("/");
}

// The regular file `path` names inside `root`, after following links; else undefined.
async function fileUnder(root: string, path: string): Promise<string | undefined> {
  const candidate = resolve(root, path);
  if (!candidate.startsWith(root + sep)) return undefined;
  try {
    const real = await realpath(candidate);
    const realRoot = await realpath(root);
    if (!real.startsWith(realRoot + sep)) return undefined;
    return (await stat(real)).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}

async function send(c: Context, file: string, immutable: boolean): Promise<Response> {
  const bytes = await readFile(file);
  return c.body(new Uint8Array(bytes), 200, {
    ...SECURITY_HEADERS,
    "Content-Type": getMimeType(file) ?? "application/octet-stream",
    "Cache-Control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
  });
}

function plain(c: Context, status: 400 | 404 | 503, text: string): Response {
  return c.body(text, status, {
    ...SECURITY_HEADERS,
    "Content-Type": "text/plain; charset=utf-8",
    "Cache-Control": "no-store",
  });
}
