// The dashboard's only way to the server: the HTTP API, with the signed-in token as a bearer
// token and, on every mutating request, a fresh Antidote-Request-Id (the server refuses a
// mutating request without one, and a replayed one). Errors keep the server's code and
// message ({"error": {"code", "message"}}), which the pages show as they are.
import { createParser } from "eventsource-parser";

const TOKEN_KEY = "antidote.token";

/** The token lives in sessionStorage: it survives a reload, not the closing of the tab. */
export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | undefined>;

function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const q = params.toString();
  return `/v1${path}${q === "" ? "" : `?${q}`}`;
}

/** Listeners told when the server says the token is no longer good (401): the app signs out. */
const unauthorized = new Set<() => void>();
export function onUnauthorized(fn: () => void): () => void {
  unauthorized.add(fn);
  return () => unauthorized.delete(fn);
}

async function request(
  method: string,
  path: string,
  init: RequestInit = {},
  query?: Query,
): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = session.token;
  if (token !== null) headers.set("Authorization", `Bearer ${token}`);
  if (method !== "GET" && method !== "HEAD") headers.set("Antidote-Request-Id", crypto.randomUUID());
  const response = await fetch(url(path, query), { ...init, method, headers });
  if (response.ok) return response;
  let code = "HTTP_" + response.status;
  let message = `the server answered ${response.status} ${response.statusText}.`;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // not the API's JSON error: keep the generic message
  }
  if (response.status === 401) for (const fn of unauthorized) fn();
  throw new ApiError(response.status, code, message);
}

export async function get<T>(path: string, query?: Query): Promise<T> {
  return (await (await request("GET", path, {}, query)).json()) as T;
}

export async function post<T>(path: string, body: unknown): Promise<T> {
  const response = await request("POST", path, {
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
  return (await response.json()) as T;
}

export async function postForm<T>(path: string, form: FormData): Promise<T> {
  return (await (await request("POST", path, { body: form })).json()) as T;
}

export async function download(path: string): Promise<Blob> {
  return (await request("GET", path)).blob();
}

export async function text(path: string): Promise<string> {
  return (await request("GET", path)).text();
}

/** Save a blob under `name` through the browser's download. */
export function saveBlob(blob: Blob, name: string): void {
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

/**
 * Follow a Server-Sent Events stream. EventSource cannot send an Authorization header, so the
 * stream is read with fetch and parsed by eventsource-parser; `onEvent` gets each event's
 * name and data. Resolves when the server ends the stream or `signal` aborts.
 */
export async function stream(
  path: string,
  onEvent: (event: string, data: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const response = await request("GET", path, { signal, headers: { Accept: "text/event-stream" } });
  const body = response.body;
  if (body === null) return;
  const parser = createParser({ onEvent: (e) => onEvent(e.event ?? "message", e.data) });
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  } finally {
    reader.releaseLock();
  }
}
