// Feedback consensus: is a feedback label what the rest of the fleet says about inputs like this
// one? A deployed agent's feedback labels become the next training set's labels, so an agent that
// relabels inputs poisons the next model (the closed-loop label-poisoning path). A feedback label is
// SUSPICIOUS when it disagrees with the model AND with other agents' feedback on similar inputs:
// - with the model: the model gives the label at most `maxModelProbability` (not merely "another
//   class won": an honest correction of a shirt the model took for a T-shirt usually has some
//   probability on "Shirt");
// - with the others: at most `maxSupport` of the neighbours carry the label — the same input (its
//   content digest) where other agents have labeled it, else the k nearest of other agents' recent
//   labeled records by the model's probability vector.
// Measured on the Fashion-MNIST CNN's real outputs (2,048-record window, k = 10): honest labels are
// suspicious at 0.6%, Trousers relabeled "Dress" at 91%; without the model-probability condition
// (any disagreement with the argmax) honest labels were suspicious at 7.0% — the model's confident
// errors, whose neighbours carry the model's answer.
//
// A single suspicious label is still not an alarm; the per-agent anomaly monitor charts each
// agent's rate of them against the rest of the fleet's.
//
// Neighbours are never the agent's own records (an agent cannot vouch for itself). The window holds
// the last `window` labeled records of all agents; judging a record costs window × classes.
import { z } from "zod";
import type { DecodedRecord } from "../schema.js";

export const consensusOptionsShape = {
  /** Other agents' recent labeled records kept to compare with. */
  window: z.number().int().min(10).max(100_000).default(2048),
  /** Nearest neighbours consulted when no other agent labeled the same input. */
  k: z.number().int().min(1).max(100).default(10),
  /** Fewer neighbours than this: no judgement. */
  minNeighbours: z.number().int().min(1).default(5),
  /** A label carried by at most this share of the neighbours disagrees with them. */
  maxSupport: z.number().min(0).lt(1).default(0.1),
  /** A label the model gives more than this probability does not disagree with it. */
  maxModelProbability: z.number().gt(0).lt(1).default(0.01),
};

export const consensusStateSchema = z.object({
  next: z.number().int().min(0),
  agents: z.array(z.string()),
  feedback: z.array(z.number().int()),
  digests: z.array(z.string()),
  probs: z.array(z.number()),
});
export type ConsensusState = z.output<typeof consensusStateSchema>;

/** none: no feedback; agrees: the model's answer; plausible: the model gives it some probability. */
export type Judgement = "none" | "agrees" | "plausible" | "supported" | "suspicious" | "undecided";

export class ConsensusWindow {
  private next: number;
  private readonly agents: string[];
  private readonly feedback: number[];
  private readonly digests: string[];
  private readonly probs: Float32Array;
  private readonly byDigest = new Map<string, number[]>();

  constructor(
    private readonly K: number,
    private readonly opts: {
      window: number;
      k: number;
      minNeighbours: number;
      maxSupport: number;
      maxModelProbability: number;
    },
    state?: ConsensusState,
  ) {
    this.next = state?.next ?? 0;
    this.agents = [...(state?.agents ?? [])];
    this.feedback = [...(state?.feedback ?? [])];
    this.digests = [...(state?.digests ?? [])];
    this.probs = new Float32Array(opts.window * K);
    if (state !== undefined) this.probs.set(state.probs.slice(0, this.probs.length));
    this.digests.forEach((d, slot) => this.index(d, slot));
  }

  /** How the record's feedback stands against the model and the other agents' labels. */
  judge(agent: string, r: DecodedRecord): Judgement {
    if (r.feedback < 0) return "none";
    if (r.feedback === r.predicted) return "agrees";
    if ((r.probs[r.feedback] ?? 0) > this.opts.maxModelProbability) return "plausible";
    const verdict = (labels: number[]): Judgement =>
      labels.filter((l) => l === r.feedback).length <= this.opts.maxSupport * labels.length
        ? "suspicious"
        : "supported";
    // The same input labeled by other agents settles it; else its nearest neighbours.
    const same: number[] = [];
    for (const slot of this.byDigest.get(r.digest) ?? [])
      if (this.agents[slot] !== agent) same.push(this.feedback[slot] as number);
    if (same.length > 0) return verdict(same);
    const near = this.nearestLabels(agent, r.probs);
    return near.length < this.opts.minNeighbours ? "undecided" : verdict(near);
  }

  add(agent: string, r: DecodedRecord): void {
    if (r.feedback < 0) return;
    const slot = this.next % this.opts.window;
    if (slot < this.agents.length) {
      const old = this.byDigest.get(this.digests[slot] as string);
      if (old !== undefined) {
        const i = old.indexOf(slot);
        if (i >= 0) old.splice(i, 1);
        if (old.length === 0) this.byDigest.delete(this.digests[slot] as string);
      }
    }
    this.agents[slot] = agent;
    this.feedback[slot] = r.feedback;
    this.digests[slot] = r.digest;
    this.probs.set(r.probs.subarray(0, this.K), slot * this.K);
    this.index(r.digest, slot);
    this.next++;
  }

  toJSON(): ConsensusState {
    return {
      next: this.next,
      agents: [...this.agents],
      feedback: [...this.feedback],
      digests: [...this.digests],
      probs: Array.from(this.probs.subarray(0, this.agents.length * this.K)),
    };
  }

  private index(digest: string, slot: number): void {
    const list = this.byDigest.get(digest);
    if (list === undefined) this.byDigest.set(digest, [slot]);
    else list.push(slot);
  }

  /** Labels of the k records of other agents nearest by squared distance of probabilities. */
  private nearestLabels(agent: string, probs: Float32Array): number[] {
    const { k } = this.opts;
    const K = this.K;
    const bestD: number[] = [];
    const bestL: number[] = [];
    for (let slot = 0; slot < this.agents.length; slot++) {
      if (this.agents[slot] === agent) continue;
      let d = 0;
      const base = slot * K;
      for (let c = 0; c < K; c++) {
        const diff = (this.probs[base + c] as number) - (probs[c] as number);
        d += diff * diff;
      }
      if (bestD.length === k && d >= (bestD[k - 1] as number)) continue;
      let i = bestD.length === k ? k - 1 : bestD.length;
      while (i > 0 && (bestD[i - 1] as number) > d) {
        bestD[i] = bestD[i - 1] as number;
        bestL[i] = bestL[i - 1] as number;
        i--;
      }
      bestD[i] = d;
      bestL[i] = this.feedback[slot] as number;
    }
    return bestL;
  }
}
