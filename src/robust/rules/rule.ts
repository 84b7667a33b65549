// What every rule returns to `aggregate`, which adds the rule name, F and the engine's numbers.
import type { ClientScore } from "../types.js";

export interface RuleOutput {
  aggregate: Float32Array;
  clients: ClientScore[];
  details: Record<string, number | string>;
}
