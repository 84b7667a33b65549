// Who does what in a simulated fleet, decided before anything is sent so the ground truth
// depends on the seed alone (never on what a server answered): each agent's slice of the
// data, which agents are compromised and with which behaviours, and for a compromised agent
// exactly which of its records are poisoned (round(rate × its records), spread uniformly
// over its traffic) and which of its batches are forged, replayed or served by the wrong
// model (round(rate × batches) of each, at least one).
import type { Sample } from "../../data/sample.js";
import { Rng } from "../../math/rng.js";
import type { SigningKey } from "../../provenance/keys.js";
import type { FleetBehaviour, ForgeryKind } from "./truth.js";

export interface AgentPlan {
  name: string;
  key: SigningKey;
  compromised: boolean;
  behaviours: FleetBehaviour[];
  /** Indices into the samples: the agent's own slice. */
  slice: number[];
  /** Slice members a trigger goes into (not already of the target class). */
  triggerEligible: number[];
  /** Slice members whose feedback label a flip changes (of the source class, not the target). */
  flipEligible: number[];
  /** Record position (batch × batchSize + j) → what poisons it. */
  poison: Map<number, "trigger" | "flip">;
  wrongModel: Set<number>;
  /** Batch index → forgery sent just before that batch. */
  forge: Map<number, ForgeryKind>;
  /** Batch index → the earlier batch re-sent just after it. */
  replay: Map<number, number>;
  /** Draws while generating (inputs, times, feedback). */
  rng: Rng;
  order: number[];
  cursor: number;
}

export interface PlanSettings {
  agents: number;
  compromised: number;
  rate: number;
  behaviours: readonly FleetBehaviour[];
  assign: "all" | "round-robin";
  batches: number;
  batchSize: number;
  seed: number | string;
  agentPrefix: string;
  /** "shared": every agent draws from all the data (a fleet serving one population);
   * "disjoint": each its own slice (sites that see different things). */
  slices: "shared" | "disjoint";
}

export function planFleet(
  samples: readonly Sample[],
  settings: PlanSettings,
  eligible: { trigger: (s: Sample) => boolean; flip: (s: Sample) => boolean },
  keyOf: (agent: string) => SigningKey,
): AgentPlan[] {
  const seed = String(settings.seed);
  const order = new Rng(`${seed}/slices`).shuffle(Array.from(samples.keys()));
  const compromised = new Set(
    new Rng(`${seed}/compromised`).sample(
      Array.from({ length: settings.agents }, (_, i) => i),
      settings.compromised,
    ),
  );
  const names = fleetAgentNames(settings.agents, settings.agentPrefix);
  let k = 0;
  let ordinal = 0;
  return names.map((name, i) => {
    const from = Math.floor((i * order.length) / settings.agents);
    const to = Math.floor(((i + 1) * order.length) / settings.agents);
    // Shared: the whole data in the agent's own order; an agent never cycles through a tiny
    // slice, which would make honest agents look alike only to themselves.
    const slice = settings.slices === "shared" ? order : order.slice(from, to);
    const bad = compromised.has(i);
    const behaviours = !bad
      ? []
      : settings.assign === "all"
        ? [...settings.behaviours]
        : [settings.behaviours[k++ % settings.behaviours.length] as FleetBehaviour];
    const rng = new Rng(`${seed}/agent/${name}`);
    const plan: AgentPlan = {
      name,
      key: keyOf(name),
      compromised: bad,
      behaviours,
      slice,
      triggerEligible: slice.filter((j) => eligible.trigger(samples[j] as Sample)),
      flipEligible: slice.filter((j) => eligible.flip(samples[j] as Sample)),
      poison: new Map(),
      wrongModel: new Set(),
      forge: new Map(),
      replay: new Map(),
      rng,
      order: rng.shuffle([...slice]),
      cursor: 0,
    };
    if (bad) planAttacks(plan, settings, new Rng(`${seed}/plan/${name}`), ordinal++);
    return plan;
  });
}

/** The agents' names: `<prefix>01`, `<prefix>02`, … (at least two digits). */
export function fleetAgentNames(count: number, prefix: string): string[] {
  const width = Math.max(2, String(count).length);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(width, "0")}`);
}

/** The next honest input of the agent: its slice in a shuffled order, reshuffled each pass. */
export function nextInput(plan: AgentPlan): number {
  if (plan.cursor >= plan.order.length) {
    plan.rng.shuffle(plan.order);
    plan.cursor = 0;
  }
  return plan.order[plan.cursor++] as number;
}

// `ordinal`: the agent's place among the compromised, so forgery kinds alternate across them too.
function planAttacks(plan: AgentPlan, s: PlanSettings, rng: Rng, ordinal: number): void {
  const recordLevel = plan.behaviours.filter((b): b is "trigger" | "flip" => b === "trigger" || b === "flip");
  if (recordLevel.length > 0) {
    const total = s.batches * s.batchSize;
    const count = Math.min(total, Math.max(1, Math.round(s.rate * total)));
    rng
      .sample(
        Array.from({ length: total }, (_, i) => i),
        count,
      )
      .forEach((position, i) =>
        plan.poison.set(position, recordLevel[i % recordLevel.length] as "trigger" | "flip"),
      );
  }
  const times = Math.max(1, Math.round(s.rate * s.batches));
  const batches = Array.from({ length: s.batches }, (_, i) => i);
  if (plan.behaviours.includes("wrong-model"))
    for (const b of rng.sample(batches, Math.min(times, s.batches))) plan.wrongModel.add(b);
  if (plan.behaviours.includes("forge")) {
    const kinds: ForgeryKind[] = ["unregistered-key", "altered-records"];
    const first = ordinal % 2;
    rng
      .sample(batches, Math.min(times, s.batches))
      .forEach((b, i) => plan.forge.set(b, kinds[(first + i) % 2] as ForgeryKind));
  }
  if (plan.behaviours.includes("replay") && s.batches > 1)
    for (const b of rng.sample(batches.slice(1), Math.min(times, s.batches - 1)))
      plan.replay.set(b, rng.int(b));
}
