// Data loading for pages: one hook that fetches a JSON resource, re-fetches when its key
// changes or on `reload()`, and ignores answers that arrive after the page moved on.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

export function useLoad<T>(load: () => Promise<T>, key: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  const generation = useRef(0);
  useEffect(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => {
        if (mine === generation.current) setState({ data, loading: false });
      },
      (error: unknown) => {
        if (mine === generation.current)
          setState({ error: error instanceof Error ? error : new Error(String(error)), loading: false });
      },
    );
  }, [...key, tick]); // `key` lists what `load` depends on
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

export interface Cursor {
  cursor: string | undefined;
  page: number;
  next: (c: string) => void;
  prev: () => void;
  reset: () => void;
}

/** Keyset pagination: the cursors of the pages seen so far, so Back returns exactly. */
export function useCursor(): Cursor {
  const [stack, setStack] = useState<string[]>([]);
  return {
    cursor: stack[stack.length - 1],
    page: stack.length + 1,
    next: (c) => setStack((s) => [...s, c]),
    prev: () => setStack((s) => s.slice(0, -1)),
    reset: () => setStack([]),
  };
}
