// `antidote token` (being built).
import type { Command } from "commander";

export function registerToken(program: Command): void {
  void program;
}
