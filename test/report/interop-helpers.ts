// A supplier's signing key and a signed delivery statement, for the interop tests.
import { createPrivateKey } from "node:crypto";
import { signStatement } from "../../src/provenance/bundle.js";
import { generateSigningKey } from "../../src/provenance/keys.js";
import { buildStatement } from "../../src/provenance/manifest.js";

export interface TestSupplier {
  key: { keyId: string; privateKey: ReturnType<typeof createPrivateKey>; publicKeyPem: string };
  publicKeyPem: string;
}

export function supplierKey(): TestSupplier {
  const made = generateSigningKey();
  const key = {
    keyId: made.keyId,
    privateKey: createPrivateKey(made.privateKeyPem),
    publicKeyPem: made.publicKeyPem,
  };
  return { key, publicKeyPem: made.publicKeyPem };
}

/** The Sigstore bundle (JSON) of the supplier's signed statement over `path`. */
export async function signedStatement(path: string, supplier: TestSupplier): Promise<string> {
  return JSON.stringify(signStatement(await buildStatement(path), supplier.key));
}
