// Progress bars for long work: drawn on stderr only when it is a terminal and the user did
// not ask for --json or --quiet, so pipes and CI logs stay clean.
import cliProgress from "cli-progress";

export interface ProgressBar {
  /** Set the absolute amount done (bytes or samples). */
  update(done: number): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  /** Total amount, when known; without it the bar shows a count and a rate. */
  total?: number | undefined;
  unit: "bytes" | "samples";
  enabled: boolean;
}

const SILENT: ProgressBar = { update: () => undefined, stop: () => undefined };

export function progressBar(options: ProgressOptions): ProgressBar {
  if (!options.enabled || !process.stderr.isTTY) return SILENT;
  const known = options.total !== undefined && options.total > 0;
  const format = known
    ? `${options.label} [{bar}] {percentage}% | {shown} | {eta_formatted} left`
    : `${options.label} {shown}`;
  const bar = new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, clearOnComplete: true, fps: 10, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  const show = (done: number) =>
    options.unit === "bytes"
      ? `${(done / 1e6).toFixed(1)}${known ? ` / ${((options.total ?? 0) / 1e6).toFixed(1)}` : ""} MB`
      : `${done.toLocaleString("en-US")}${known ? ` / ${(options.total ?? 0).toLocaleString("en-US")}` : ""} samples`;
  bar.start(known ? (options.total ?? 0) : 0, 0, { shown: show(0) });
  return {
    update(done) {
      bar.update(known ? Math.min(done, options.total ?? done) : 0, { shown: show(done) });
    },
    stop() {
      bar.stop();
    },
  };
}
