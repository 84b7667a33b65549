// Small pieces every page uses: loading and error states, a pager for keyset pages, a
// table wrapper that scrolls sideways on a narrow window, and pills.
import type { ComponentChildren } from "preact";
import type { Cursor, Loaded } from "../hooks";

export function Status<T>({
  loaded,
  children,
}: {
  loaded: Loaded<T>;
  children: (data: T) => ComponentChildren;
}) {
  if (loaded.error !== undefined) return <ErrorBox error={loaded.error} />;
  if (loaded.data === undefined)
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  return <>{children(loaded.data)}</>;
}

export function ErrorBox({ error }: { error: Error }) {
  const code = "code" in error ? String((error as { code: unknown }).code) : "ERROR";
  return (
    <p class="error" role="alert">
      <strong>{code}</strong>: {error.message}
    </p>
  );
}

export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}

/** Previous / next over keyset pages: `cursor` is the page's `useCursor()`, `next` its nextCursor. */
export function Pager({ cursor, next }: { cursor: Cursor; next: string | null }) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled={cursor.page === 1} onClick={cursor.prev}>
        ← Previous
      </button>
      <span aria-live="polite">Page {cursor.page}</span>
      <button type="button" disabled={next === null} onClick={() => next !== null && cursor.next(next)}>
        Next →
      </button>
    </nav>
  );
}

export function Pill({ tone, children }: { tone?: "bad" | "ok" | "warn"; children: ComponentChildren }) {
  return <span class={`pill ${tone ?? ""}`}>{children}</span>;
}

export function Card({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="card" aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

export function Stat({
  label,
  value,
  tone,
}: {
  label: string;
  value: ComponentChildren;
  tone?: "bad" | "ok";
}) {
  return (
    <div class={`stat ${tone ?? ""}`}>
      <div class="stat-value">{value}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
}
