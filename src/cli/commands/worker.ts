// `antidote worker` (being built).
import type { Command } from "commander";

export function registerWorker(program: Command): void {
  void program;
}
