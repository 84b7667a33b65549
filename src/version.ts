// Read once from package.json so `--version`, ground-truth files and reports agree.
import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};
export const VERSION: string = pkg.version;
