// A view of the ledger whose appends are recorded under one actor: the token's principal.
// Library functions that append without an actor option (ingestDelivery) then still name
// who asked, and a route cannot forget to pass it.
import { shareConnection } from "../ledger/index.js";
import type { AppendOptions, Ledger, LedgerEventInput } from "../ledger/types.js";

export function actingAs(ledger: Ledger, actor: string): Ledger {
  const view = new Proxy(ledger, {
    get(target, property) {
      if (property === "append")
        return (events: LedgerEventInput[], options: AppendOptions = {}) =>
          target.append(events, { ...options, actor });
      if (property === "rotateKey")
        return (next: Parameters<Ledger["rotateKey"]>[0], options: AppendOptions = {}) =>
          target.rotateKey(next, { ...options, actor });
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  // Readers that query the ledger's own connection (ledgerConnection) see through the view.
  return shareConnection(view, ledger);
}
