import type { Command } from "commander";
import { listBuiltinDatasets } from "../../data/builtin.js";
import { printTable } from "../table.js";

export function registerDatasets(program: Command): void {
  program
    .command("datasets")
    .description(
      "List the real datasets Antidote can use on this machine, and how to install the missing ones",
    )
    .option("--json", "print JSON instead of a table")
    .action((flags: { json?: boolean }) => {
      const list = listBuiltinDatasets();
      if (flags.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + "\n");
        return;
      }
      printTable(
        ["name", "status", "samples", "modality", "path or how to install"],
        list.map((d) => [
          d.name,
          d.available ? "installed" : "missing",
          d.count.toLocaleString("en-US"),
          d.modality,
          d.available ? d.path : d.install,
        ]),
      );
      process.stdout.write(
        "\nUse a name wherever a dataset path is expected, e.g. `antidote inspect fashion-mnist:test`.\n",
      );
    });
}
