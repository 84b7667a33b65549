// The full fl-sim table: every aggregation rule (and FoolsGold) against every attack, on real
// Fashion-MNIST, each rule also run without attackers so its own cost shows apart from the
// attack's damage.
//   npm run bench:fl-sim                      (IID, softmax regression: ~10 min on 2 cores)
//   npm run bench:fl-sim -- --split dirichlet --model mlp --quick
// Writes the tables to stdout and every number to .cache/bench/fl-sim-<split>-<model>.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatTable } from "../src/cli/commands/fl-sim.js";
import { FL_ATTACKS } from "../src/robust/fl/attacks.js";
import { loadFlData, simulateFederation, type FlSimResult } from "../src/robust/fl/simulate.js";

const { values } = parseArgs({
  options: {
    split: { type: "string", default: "iid" },
    model: { type: "string", default: "softmax" },
    quick: { type: "boolean", default: false },
    attacks: { type: "string", default: FL_ATTACKS.join(",") },
    seed: { type: "string", default: "1" },
  },
});
const split = values.split === "dirichlet" ? "dirichlet" : "iid";
const model = values.model === "mlp" ? "mlp" : "softmax";
const trainSize = values.quick ? 2000 : 6000;
const testSize = values.quick ? 2000 : 10_000;
const seed = Number(values.seed);
const data = await loadFlData({ trainSize, testSize, rootSize: 100, seed });
const results: FlSimResult[] = [];
for (const attack of values.attacks.split(",")) {
  const result = await simulateFederation({
    data,
    attack: attack as (typeof FL_ATTACKS)[number],
    clients: 20,
    byzantine: 4,
    rounds: values.quick ? 20 : 30,
    split,
    alpha: 0.5,
    model,
    trainSize,
    testSize,
    seed,
    foolsGold: true,
    attackFreePerRule: attack !== "none",
    onRound: (p) =>
      process.stderr.isTTY &&
      process.stderr.write(
        `\r\x1b[2K${attack}: run ${p.run}/${p.runs} ${p.rule}, round ${p.round}/${p.rounds}`,
      ),
  });
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
  process.stdout.write(`\n${formatTable(result)}`);
  results.push(result);
}
const dir = join(process.cwd(), ".cache", "bench");
mkdirSync(dir, { recursive: true });
const file = join(dir, `fl-sim-${split}-${model}.json`);
writeFileSync(file, JSON.stringify(results, null, 2));
process.stdout.write(`\nwrote ${file}\n`);
