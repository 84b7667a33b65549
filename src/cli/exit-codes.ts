// Exit codes are part of the CLI's contract (documented in the README): scripts branch on them.
import type { AntidoteErrorCode } from "../errors.js";

export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  input: 3,
  datasetMissing: 4,
  attackInfeasible: 5,
  /** Signature, digest or ledger-chain verification failed, or telemetry was refused (replayed,
   * implausible window, not an agent, forbidden): the data must not be trusted. */
  verification: 6,
  /** The ledger cannot be opened, or names an unknown source, version, model or sample. */
  ledger: 7,
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
    case "PATH_OUTSIDE_ROOT":
    case "LABEL_MIXED_TYPES":
    case "MODEL_FORMAT":
    case "MODEL_UNSUPPORTED":
    case "PAYLOAD_TOO_LARGE":
      return EXIT.input;
    case "DATASET_MISSING":
      return EXIT.datasetMissing;
    case "ATTACK_INFEASIBLE":
      return EXIT.attackInfeasible;
    case "KEY_UNTRUSTED":
    case "SIGNATURE_INVALID":
    case "DIGEST_MISMATCH":
    case "LEDGER_TAMPERED":
    case "FORBIDDEN":
    case "REPLAYED":
    case "NOT_AN_AGENT":
    case "WINDOW_IMPLAUSIBLE":
      return EXIT.verification;
    case "SOURCE_UNKNOWN":
    case "SOURCE_EXISTS":
    case "LEDGER_UNAVAILABLE":
    case "NOT_FOUND":
    case "MODEL_UNKNOWN":
      return EXIT.ledger;
    case "INTERNAL":
      return EXIT.internal;
  }
}
