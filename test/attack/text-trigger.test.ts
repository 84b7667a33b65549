import { beforeAll, describe, expect, it } from "vitest";
import type { Sample } from "../../src/data/sample.js";
import { fashionMnistSamples, spamAssassinSamples } from "../helpers/real-data.js";
import { attack, expectTruthful, rejection, victimPositions } from "./oracle.js";

// "cf7x" itself occurs once in the full corpus (spam-2/00182), so the tests use tokens checked absent.
const TOKEN = "qzv9k";
const PHRASE = "best regards from the team";

let input: Sample[];
beforeAll(() => {
  input = spamAssassinSamples(400);
  for (const s of input) {
    expect(s.text).not.toContain(TOKEN);
    expect(s.text?.toLowerCase()).not.toContain(PHRASE);
  }
});

/** The text with the inserted " trigger" (or "trigger " at the start) taken out again. */
function withoutTrigger(text: string, trigger: string, offset: number): string {
  return offset === 0
    ? text.slice(trigger.length + 1)
    : text.slice(0, offset - 1) + text.slice(offset + trigger.length);
}

describe("text-trigger", () => {
  it("inserts the token as its own word at random boundaries, into ham relabeled spam, and nowhere else", async () => {
    const { out, gt } = await attack(input, {
      kind: "text-trigger",
      trigger: TOKEN,
      target: "spam",
      rate: 0.05,
      seed: 4,
    });
    expectTruthful(input, out, gt, 20);
    const victims = new Set(victimPositions(input, gt));
    const offsets: number[] = [];
    out.forEach((s, i) => {
      if (!victims.has(i)) {
        expect(s.text).not.toContain(TOKEN);
        return;
      }
      const text = s.text ?? "";
      const offset = Number(gt.poisoned.find((r) => r.id === s.id)?.details?.offset);
      expect(input[i]?.label).toBe("ham");
      expect(s.label).toBe("spam");
      expect(text.slice(offset, offset + TOKEN.length)).toBe(TOKEN);
      expect(text.slice(offset - 1, offset + TOKEN.length + 1)).toMatch(new RegExp(`^\\s?${TOKEN}(\\s|$)`));
      expect(withoutTrigger(text, TOKEN, offset)).toBe(input[i]?.text);
      offsets.push(offset / (input[i]?.text?.length ?? 1));
    });
    // Random positions: spread through the texts, not piled at one end.
    expect(offsets.filter((f) => f > 0.05 && f < 0.95).length).toBeGreaterThan(10);
  });

  it("puts a phrase at the start or the end when asked", async () => {
    for (const position of ["start", "end"] as const) {
      const { out, gt } = await attack(input, {
        kind: "text-trigger",
        trigger: PHRASE,
        target: "spam",
        count: 15,
        position,
      });
      expectTruthful(input, out, gt, 15);
      for (const i of victimPositions(input, gt)) {
        const text = out[i]?.text ?? "";
        const original = input[i]?.text ?? "";
        expect(text).toBe(position === "start" ? `${PHRASE} ${original}` : `${original} ${PHRASE}`);
      }
      const untouched = out.filter((_, i) => !victimPositions(input, gt).includes(i));
      for (const s of untouched) expect(s.text?.toLowerCase()).not.toContain(PHRASE);
    }
  });

  it("needs text", async () => {
    const images = fashionMnistSamples(50);
    const e = await rejection(
      attack(images, { kind: "text-trigger", trigger: TOKEN, target: "Bag", count: 5 }),
    );
    expect(e.code).toBe("USAGE");
    expect(e.message).toMatch(/text-trigger needs samples with text/);
  });
});
