// What a simulator did, sample by sample: the oracle that detectors are scored against
// (precision and recall). Written as pretty JSON next to the poisoned dataset and read back
// with validation, so a hand-edited or truncated file fails with the field at fault.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { checkOutput, writeOutputFile, type OutputOptions } from "../data/atomic-output.js";
import type { JsonValue } from "../data/sample.js";
import { ATTACK_KINDS, attackSpecSchema, describeIssues, type ResolvedAttackSpec } from "./spec.js";

export type PoisonAction =
  | "patched"
  | "blended"
  | "relabeled"
  | "trigger-inserted"
  | "duplicate-added"
  | "annotator-flipped"
  | "source-assigned";

export interface PoisonRecord {
  /** Id of the sample in the output. */
  id: string;
  action: PoisonAction;
  /** Label before the attack (null for a sample the attack added). */
  originalLabel: string | null;
  /** Label in the output. */
  label: string | null;
  /** Content digest before the attack; absent for a sample the attack added. */
  originalDigest?: string;
  /** Content digest in the output. */
  digest: string;
  /** Source in the output. */
  source?: string | null;
  details?: Record<string, JsonValue>;
}

export interface GroundTruth {
  attack: ResolvedAttackSpec["kind"];
  /** The spec with every default filled in: passing it back to simulateAttack reproduces the output. */
  params: ResolvedAttackSpec;
  inputCount: number;
  outputCount: number;
  poisonedCount: number;
  poisoned: PoisonRecord[];
  /** The class list that class references and random relabels were resolved against. */
  classes?: string[];
  /** Attack-wide counts (per source, per annotator, the template of a campaign). */
  summary?: Record<string, JsonValue>;
}

/**
 * Written through a temporary and renamed into place (atomic-output.ts), so a reader never
 * sees half a list. Refuses an existing file unless `overwrite`, and any of `inputs`.
 */
export async function writeGroundTruth(
  path: string,
  gt: GroundTruth,
  options: OutputOptions = {},
): Promise<void> {
  checkGroundTruthOutput(path, options);
  try {
    await writeOutputFile(path, `${JSON.stringify(gt, null, 2)}\n`, options);
  } catch (e) {
    if (e instanceof AntidoteError) throw e;
    throw new AntidoteError("USAGE", `${path}: cannot write the ground truth: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** What `writeGroundTruth` would refuse, checked before an attack writes anything. */
export function checkGroundTruthOutput(path: string, options: OutputOptions = {}): void {
  if (!existsSync(dirname(resolve(path)))) {
    throw new AntidoteError(
      "FILE_NOT_FOUND",
      `${path}: cannot write the ground truth: its folder does not exist.`,
    );
  }
  checkOutput(path, options);
}

export async function readGroundTruth(path: string): Promise<GroundTruth> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new AntidoteError("FILE_NOT_FOUND", `${path}: no such ground-truth file.`, { cause: e });
    }
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: cannot read the ground truth: ${(e as Error).message}`,
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: the ground truth is not valid JSON: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  const parsed = groundTruthSchema.safeParse(json);
  if (!parsed.success) {
    throw new AntidoteError(
      "INPUT_FORMAT",
      `${path}: not a valid ground truth: ${describeIssues(parsed.error.issues)}`,
    );
  }
  return parsed.data;
}

const HEX_DIGEST = /^[0-9a-f]{64}$/;

const jsonValueSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValueSchema),
    z.record(z.string(), jsonValueSchema),
  ]),
);

const poisonRecordSchema = z.object({
  id: z.string(),
  action: z.enum([
    "patched",
    "blended",
    "relabeled",
    "trigger-inserted",
    "duplicate-added",
    "annotator-flipped",
    "source-assigned",
  ]),
  originalLabel: z.string().nullable(),
  label: z.string().nullable(),
  originalDigest: z.string().regex(HEX_DIGEST, "expected a hex SHA-256 digest").optional(),
  digest: z.string().regex(HEX_DIGEST, "expected a hex SHA-256 digest"),
  source: z.string().nullable().optional(),
  details: z.record(z.string(), jsonValueSchema).optional(),
});

const count = z.number().int().nonnegative();

const groundTruthSchema = z
  .object({
    attack: z.enum(ATTACK_KINDS),
    params: attackSpecSchema,
    inputCount: count,
    outputCount: count,
    poisonedCount: count,
    poisoned: z.array(poisonRecordSchema),
    classes: z.array(z.string()).optional(),
    summary: z.record(z.string(), jsonValueSchema).optional(),
  })
  .superRefine((gt, ctx) => {
    if (gt.params.kind !== gt.attack) {
      ctx.addIssue({
        code: "custom",
        path: ["params", "kind"],
        message: `"${gt.params.kind}" but attack is "${gt.attack}"`,
      });
    }
    if (gt.poisonedCount !== gt.poisoned.length) {
      ctx.addIssue({
        code: "custom",
        path: ["poisonedCount"],
        message: `${gt.poisonedCount} but the poisoned list has ${gt.poisoned.length} records`,
      });
    }
  });
