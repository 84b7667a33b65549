// The shapes of classifier the trainer builds: a one-hidden-layer MLP over flattened pixels and
// a small two-block CNN. Both end in one dense layer whose input is the penultimate
// representation the feature-space detectors read.
import { z } from "zod";
import { AntidoteError } from "../errors.js";
import { describeIssues } from "../attack/spec.js";

export type Architecture =
  | { kind: "mlp"; hidden: number }
  | { kind: "cnn"; channels: [number, number]; kernel: number; hidden?: number };

export type ArchitectureKind = Architecture["kind"];

/**
 * Defaults sized for 1×28×28 Fashion-MNIST on two CPU cores: small enough to train a
 * backdoored test model in seconds, large enough for ≈ 0.8+ clean accuracy on a few thousand images.
 * The CNN: conv 8@3×3 pad 1 → ReLU → max-pool 2 → conv 16@3×3 pad 1 → ReLU → max-pool 2 →
 * flatten → dense 64 → ReLU → dense classes.
 */
export const DEFAULT_ARCHITECTURES: { readonly mlp: Architecture; readonly cnn: Architecture } = {
  mlp: { kind: "mlp", hidden: 128 },
  cnn: { kind: "cnn", channels: [8, 16], kernel: 3, hidden: 64 },
};

export function defaultArchitecture(kind: ArchitectureKind): Architecture {
  const a = DEFAULT_ARCHITECTURES[kind];
  return a.kind === "cnn" ? { ...a, channels: [...a.channels] } : { ...a };
}

export const architectureSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("mlp"), hidden: z.number().int().min(1).max(8192) }),
  z.strictObject({
    kind: z.literal("cnn"),
    channels: z.tuple([z.number().int().min(1).max(1024), z.number().int().min(1).max(1024)]),
    kernel: z
      .number()
      .int()
      .min(1)
      .max(15)
      .refine((k) => k % 2 === 1, "must be odd, so that padding (kernel − 1)/2 keeps the size"),
    hidden: z.number().int().min(1).max(8192).optional(),
  }),
]);

/** Validate an architecture from a caller; USAGE names the bad field. */
export function parseArchitecture(value: unknown): Architecture {
  const parsed = architectureSchema.safeParse(value);
  if (!parsed.success)
    throw new AntidoteError("USAGE", `architecture: ${describeIssues(parsed.error.issues)}`);
  return parsed.data;
}

/** Spatial side after the CNN's two 2× max-pools (floor, as ONNX MaxPool without padding does). */
export function pooledSide(side: number): number {
  return Math.floor(Math.floor(side / 2) / 2);
}
