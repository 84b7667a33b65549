// Which deliveries must be signed. Parties we contract with (suppliers, labelling
// contractors) and parties that run our code (federated clients, deployed agents) can sign
// what they send, so their unsigned deliveries are refused by default. Web crawls and
// foundation-model downloads have no signer on the other end: they are checked by other
// means (index hashes, model audits) and may arrive unsigned unless the operator says
// otherwise with `--require-signature`.
import type { SourceKind } from "../ledger/types.js";

export function defaultRequireSignature(kind: SourceKind): boolean {
  return kind === "supplier" || kind === "contractor" || kind === "fl-client" || kind === "agent";
}
