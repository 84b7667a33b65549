// Upload a signed delivery: the data file(s) and the supplier's signature bundle. The server
// verifies the signature and every digest before it writes anything; a refusal comes back
// with the reason (the first file or sample that does not match), shown as it is.
import { useState } from "preact/hooks";
import { ApiError, postForm } from "../api";
import { useAuth } from "../auth";
import { Card, Pill } from "../components/ui";
import { count, short } from "../format";
import type { IngestResult } from "../types";

export function Deliver() {
  const { me, can } = useAuth();
  const [result, setResult] = useState<IngestResult | null>(null);
  const [refusal, setRefusal] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);
  if (!can("deliver"))
    return (
      <>
        <h1>Deliver</h1>
        <p>A {me.role} token may not upload deliveries; suppliers and administrators can.</p>
      </>
    );
  return (
    <>
      <h1>Deliver</h1>
      <Card title="Upload a signed delivery">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const data = new FormData(e.currentTarget);
            const form = new FormData();
            // The source goes first: the server checks it before reading any file.
            const source = data.get("source");
            form.set("source", typeof source === "string" ? source : "");
            for (const file of data.getAll("data"))
              if (file instanceof File) form.append("data", file, file.name);
            const signature = data.get("signature");
            if (signature instanceof File && signature.size > 0)
              form.set("signature", signature, signature.name);
            setBusy(true);
            setResult(null);
            setRefusal(null);
            postForm<IngestResult>("/deliveries", form).then(
              (r) => {
                setResult(r);
                setBusy(false);
              },
              (err: unknown) => {
                setRefusal(err as Error);
                setBusy(false);
              },
            );
          }}
        >
          <label for="source">Source</label>
          <input
            id="source"
            name="source"
            required
            defaultValue={me.source ?? ""}
            readOnly={me.source !== null}
          />
          <label for="data">Data file(s)</label>
          <input id="data" name="data" type="file" multiple required />
          <label for="signature">Signature (Sigstore bundle or DSSE envelope)</label>
          <input id="signature" name="signature" type="file" accept=".json" />
          <button type="submit" disabled={busy}>
            {busy ? "Verifying…" : "Upload and verify"}
          </button>
        </form>
      </Card>
      {result !== null && (
        <Card title="Verified">
          <p role="status" data-testid="delivery-verified">
            <Pill tone="ok">verified</Pill>{" "}
            {result.alreadyIngested
              ? "Already ingested — nothing new was written."
              : "Recorded in the ledger."}{" "}
            {count(result.sampleCount)} samples in {result.files} file(s), signed by key{" "}
            <span class="mono">{result.keyId === null ? "none" : short(result.keyId, 12)}</span>.
          </p>
          <p>
            New dataset version:{" "}
            <a href={`/versions/${encodeURIComponent(result.datasetVersion)}`}>
              {short(result.datasetVersion, 40)}
            </a>
          </p>
        </Card>
      )}
      {refusal !== null && (
        <Card title="Refused">
          <p role="alert" class="error" data-testid="delivery-refused">
            <Pill tone="bad">refused</Pill>{" "}
            <strong>{refusal instanceof ApiError ? refusal.code : "ERROR"}</strong>: {refusal.message}
          </p>
          <p class="muted">Nothing was written to the ledger.</p>
        </Card>
      )}
    </>
  );
}
