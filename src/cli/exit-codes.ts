// Exit codes are part of the CLI's contract (documented in the README): scripts branch on them.
import type { AntidoteErrorCode } from "../errors.js";

export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  input: 3,
  datasetMissing: 4,
  attackInfeasible: 5,
} as const;

export function exitCodeFor(code: AntidoteErrorCode): number {
  switch (code) {
    case "USAGE":
      return EXIT.usage;
    case "FILE_NOT_FOUND":
    case "INPUT_FORMAT":
    case "COLUMN_MISSING":
    case "ROW_MALFORMED":
    case "IMAGE_UNDECODABLE":
    case "IDX_HEADER":
    case "LABEL_MIXED_TYPES":
      return EXIT.input;
    case "DATASET_MISSING":
      return EXIT.datasetMissing;
    case "ATTACK_INFEASIBLE":
      return EXIT.attackInfeasible;
    case "INTERNAL":
      return EXIT.internal;
  }
}
