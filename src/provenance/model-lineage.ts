// A model's lineage, both ways: the base models it was fine-tuned from (up to the foundation
// model), and every model built on it, however many fine-tunes removed. A backdoor in a base
// model survives fine-tuning often enough (Kurita et al. 2020; Hubinger et al. 2024) that when
// a base is found poisoned, every descendant is suspect: `trace --model <base>` lists them with
// their deployment status, so they can be audited or suspended.
import type { LedgerReader } from "../ledger/index.js";
import type { Finding, ModelRecord, ModelStatus } from "../ledger/types.js";
import { findModel } from "./model.js";

export interface ModelLineageEntry extends ModelRecord {
  status: ModelStatus["status"];
  /** Fine-tunes between this model and the one traced (1 = built directly on it). */
  depth: number;
}

export interface ModelLineage {
  model: ModelLineageEntry;
  /** Base models, nearest first, ending at a model with no base (or one not registered). */
  ancestors: ModelLineageEntry[];
  /** A base named at registration but not in the ledger (the chain stops there), or null. */
  unregisteredBase: string | null;
  /** Every model built on this one, breadth first. */
  descendants: (ModelLineageEntry & { base: string })[];
  /** Findings recorded on the model or any ancestor (audits, monitors), most severe first. */
  findings: (Finding & { seq: number })[];
}

export async function traceModel(ledger: LedgerReader, digestOrPrefix: string): Promise<ModelLineage> {
  const models = await ledger.listModels();
  const root = findModel(models, digestOrPrefix);
  const byDigest = new Map(models.map((m) => [m.digest, m]));
  const children = new Map<string, ModelRecord[]>();
  for (const m of models) {
    if (m.baseModel === null) continue;
    const list = children.get(m.baseModel) ?? [];
    list.push(m);
    children.set(m.baseModel, list);
  }
  const entry = async (m: ModelRecord, depth: number): Promise<ModelLineageEntry> => ({
    ...m,
    depth,
    status: (await ledger.getModelStatus(m.digest))?.status ?? "active",
  });

  // A registration cannot name a model registered after it, so the chain has no cycle; the
  // visited set keeps a hand-edited ledger from looping anyway (verify reports the edit).
  const ancestors: ModelLineageEntry[] = [];
  let unregisteredBase: string | null = null;
  const seen = new Set([root.digest]);
  for (let base = root.baseModel, depth = 1; base !== null && !seen.has(base); depth++) {
    seen.add(base);
    const m = byDigest.get(base);
    if (m === undefined) {
      unregisteredBase = base;
      break;
    }
    ancestors.push(await entry(m, depth));
    base = m.baseModel;
  }

  const descendants: (ModelLineageEntry & { base: string })[] = [];
  const queue: { digest: string; depth: number }[] = [{ digest: root.digest, depth: 0 }];
  const reached = new Set([root.digest]);
  while (queue.length > 0) {
    const { digest, depth } = queue.shift()!;
    for (const child of children.get(digest) ?? []) {
      if (reached.has(child.digest)) continue;
      reached.add(child.digest);
      descendants.push({ ...(await entry(child, depth + 1)), base: digest });
      queue.push({ digest: child.digest, depth: depth + 1 });
    }
  }

  const lineage = new Set([root.digest, ...ancestors.map((a) => a.digest)]);
  const findings: (Finding & { seq: number })[] = [];
  for await (const f of ledger.findings({ subjectType: "model" }))
    if (lineage.has(f.subjectId)) findings.push(f);
  findings.sort((a, b) => b.score - a.score || a.seq - b.seq);

  return { model: await entry(root, 0), ancestors, unregisteredBase, descendants, findings };
}
