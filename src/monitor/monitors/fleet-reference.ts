// "The rest of the fleet" as a reference for one agent: counts per agent and in total, decayed
// exponentially in records seen (half-life `halfLife`), so the reference follows the fleet as it
// drifts and an agent is compared with what the others send now. Decay is applied lazily: each
// entry keeps the clock at which it was last brought up to date.
//
// Robustness: an agent that has alarmed is excluded from the reference of the others (`exclude`),
// so a compromised agent does not pull the fleet towards itself; and the reference of an agent
// never contains its own records. With a few compromised agents among many, the pooled rate of the
// others moves by their share of the traffic at most (3 of 50 agents at 5%: 0.3 points), which the
// per-agent charts tolerate because they test against the reference's UPPER confidence limit.
import { z } from "zod";

export const fleetReferenceStateSchema = z.object({
  clock: z.number().min(0),
  totals: z.object({ t: z.number(), values: z.array(z.number()) }),
  agents: z.record(z.string(), z.object({ t: z.number(), values: z.array(z.number()) })),
  excluded: z.array(z.string()),
});
export type FleetReferenceState = z.output<typeof fleetReferenceStateSchema>;

interface Entry {
  t: number;
  values: Float64Array;
}

export class FleetReference {
  private clock: number;
  private readonly totals: Entry;
  private readonly agents = new Map<string, Entry>();
  private readonly excluded: Set<string>;

  constructor(
    private readonly size: number,
    private readonly halfLife: number,
    state?: FleetReferenceState,
  ) {
    this.clock = state?.clock ?? 0;
    this.totals =
      state === undefined ? { t: 0, values: new Float64Array(size) } : entryOf(state.totals, size);
    for (const [agent, e] of Object.entries(state?.agents ?? {})) this.agents.set(agent, entryOf(e, size));
    this.excluded = new Set(state?.excluded ?? []);
  }

  /** The decayed sums of every agent but `agent` and the excluded ones, now. */
  others(agent: string): Float64Array {
    const out = this.decayed(this.totals);
    const subtract = (e: Entry | undefined): void => {
      if (e === undefined) return;
      const own = this.decayed(e);
      for (let i = 0; i < this.size; i++) out[i] = (out[i] as number) - (own[i] as number);
    };
    subtract(this.agents.get(agent));
    for (const a of this.excluded) if (a !== agent) subtract(this.agents.get(a));
    for (let i = 0; i < this.size; i++) if ((out[i] as number) < 1e-9) out[i] = 0;
    return out;
  }

  /** Advance the clock by a batch's records and add the batch (its sums) for its agent. */
  add(agent: string, values: Float64Array, records: number): void {
    this.clock += records;
    let e = this.agents.get(agent);
    if (e === undefined) this.agents.set(agent, (e = { t: this.clock, values: new Float64Array(this.size) }));
    for (const entry of [e, this.totals]) {
      const now = this.decayed(entry);
      for (let i = 0; i < this.size; i++) now[i] = (now[i] as number) + (values[i] as number);
      entry.values = now;
      entry.t = this.clock;
    }
  }

  /**
   * The spread of the fleet around its pooled rate: a robust upper bound on an honest agent's
   * own rate of `x` per `n` — median + z·1.4826·MAD over the OTHER agents' rates (excluded ones
   * left out) that rest on at least `minN` trials — or null while fewer than `minAgents` such
   * agents exist. Honest agents differ (their users, their sites, the slice of the world they
   * see), and a pooled rate says nothing about how much; the agents' own rates do.
   */
  robustUpper(
    agent: string,
    xAt: number,
    nAt: number,
    z: number,
    minN: number,
    minAgents: number,
  ): number | null {
    const rates: number[] = [];
    for (const [name, e] of this.agents) {
      if (name === agent || this.excluded.has(name)) continue;
      const v = this.decayed(e);
      const n = v[nAt] as number;
      if (n >= minN) rates.push((v[xAt] as number) / n);
    }
    if (rates.length < minAgents) return null;
    const med = median(rates);
    const mad = median(rates.map((r) => Math.abs(r - med)));
    return med + z * 1.4826 * mad;
  }

  /** The same for a mean (`sumAt` / `nAt`): median + z·1.4826·MAD over the other agents' means. */
  robustMeanSpread(
    agent: string,
    sumAt: number,
    nAt: number,
    minN: number,
    minAgents: number,
  ): number | null {
    const means: number[] = [];
    for (const [name, e] of this.agents) {
      if (name === agent || this.excluded.has(name)) continue;
      const v = this.decayed(e);
      const n = v[nAt] as number;
      if (n >= minN) means.push((v[sumAt] as number) / n);
    }
    if (means.length < minAgents) return null;
    const med = median(means);
    return 1.4826 * median(means.map((m) => Math.abs(m - med)));
  }

  exclude(agent: string): void {
    this.excluded.add(agent);
  }

  isExcluded(agent: string): boolean {
    return this.excluded.has(agent);
  }

  toJSON(): FleetReferenceState {
    const plain = (e: Entry): { t: number; values: number[] } => ({ t: e.t, values: Array.from(e.values) });
    return {
      clock: this.clock,
      totals: plain(this.totals),
      agents: Object.fromEntries([...this.agents].map(([a, e]) => [a, plain(e)])),
      excluded: [...this.excluded].sort(),
    };
  }

  private decayed(e: Entry): Float64Array {
    const f = 2 ** (-(this.clock - e.t) / this.halfLife);
    return e.values.map((v) => v * f);
  }
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function entryOf(e: { t: number; values: number[] }, size: number): Entry {
  const values = new Float64Array(size);
  values.set(e.values.slice(0, size));
  return { t: e.t, values };
}
