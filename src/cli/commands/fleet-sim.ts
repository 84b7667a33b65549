// `antidote fleet-sim`: a simulated fleet of deployed agents sending signed telemetry, some
// of them compromised, with ground truth — into a running `antidote serve` (set up through its
// HTTP API with an admin token: the model, each agent as a source with a fresh key, a token
// per agent), or, without --server, written as batch files for `antidote telemetry ingest`.
// Prints what was sent, accepted and refused (by reason), per kind and per compromised agent.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Option, type Command } from "commander";
import { z } from "zod";
import { writeOutputFile } from "../../data/atomic-output.js";
import { AntidoteError } from "../../errors.js";
import { writeTelemetryBatch } from "../../monitor/client.js";
import { loadFleetData, simulateFleet, type FleetData, type FleetProgress } from "../../monitor/fleet-sim.js";
import { onnxFleetModel, textFleetModel, type FleetModel } from "../../monitor/fleet/model.js";
import { fleetAgentNames } from "../../monitor/fleet/plan.js";
import { setupFleetOnServer } from "../../monitor/fleet/server.js";
import { httpFleetTransport, signingKeyFromPem, type FleetSend } from "../../monitor/fleet/transport.js";
import { FLEET_BEHAVIOURS, type FleetSummary, type FleetSummaryRow } from "../../monitor/fleet/truth.js";
import { generateSigningKey, type SigningKey } from "../../provenance/keys.js";
import { parseFlags } from "../options.js";
import { printTable } from "../table.js";

const num = (v: unknown): unknown => (typeof v === "string" ? (v.trim() === "" ? Number.NaN : Number(v)) : v);

const flags = z
  .object({
    server: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional(),
    token: z.string().min(1).optional(),
    data: z.string().min(1),
    model: z.string().min(1).optional(),
    wrongModel: z.string().min(1).optional(),
    agents: z.preprocess(num, z.number().int().min(1).max(10_000)),
    compromised: z.preprocess(num, z.number().int().min(0)),
    rate: z.preprocess(num, z.number().gt(0).lte(1)),
    behaviours: z.string().transform((v, ctx) => {
      const names = v.split(",").map((b) => b.trim());
      const unknown = names.filter((b) => !(FLEET_BEHAVIOURS as readonly string[]).includes(b));
      if (unknown.length > 0 || names.length === 0) {
        ctx.addIssue({
          code: "custom",
          message: `unknown behaviour ${unknown.join(", ") || "(none)"}; use a comma-separated list of ${FLEET_BEHAVIOURS.join(", ")}`,
        });
        return z.NEVER;
      }
      return [...new Set(names)] as (typeof FLEET_BEHAVIOURS)[number][];
    }),
    assign: z.enum(["all", "round-robin"]),
    batches: z.preprocess(num, z.number().int().min(1)),
    batchSize: z.preprocess(num, z.number().int().min(1).max(10_000)),
    trigger: z.string().min(1).optional(),
    target: z.string().min(1).optional(),
    flipSource: z.string().min(1).optional(),
    feedbackShare: z.preprocess(num, z.number().min(0).max(1)),
    feedbackNoise: z.preprocess(num, z.number().min(0).max(0.5)),
    interval: z.preprocess(num, z.number().positive()),
    prefix: z.string().min(1),
    slices: z.enum(["shared", "disjoint"]),
    concurrency: z.preprocess(num, z.number().int().min(1).max(256)),
    limit: z.preprocess(num, z.number().int().min(1)).optional(),
    digestOnly: z.boolean().optional(),
    seed: z.preprocess(num, z.number().int()),
    truth: z.string().min(1).optional(),
    keysDir: z.string().min(1).optional(),
    out: z.string().min(1).optional(),
    force: z.boolean().optional(),
    json: z.boolean().optional(),
    quiet: z.boolean().optional(),
  })
  .superRefine((f, ctx) => {
    if (f.server !== undefined && f.token === undefined)
      ctx.addIssue({ code: "custom", path: ["token"], message: "--server needs an admin token" });
    if (f.server === undefined && f.out === undefined && f.truth === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["server"],
        message: "give --server, or --out (batch files) and/or --truth",
      });
    if (f.compromised > f.agents)
      ctx.addIssue({
        code: "custom",
        path: ["compromised"],
        message: `must be at most --agents (${f.agents})`,
      });
  });
type Flags = z.output<typeof flags>;

export function registerFleetSim(program: Command): void {
  program
    .command("fleet-sim")
    .description("Simulate deployed agents sending signed telemetry, some compromised, with ground truth")
    .option("--server <url>", "a running `antidote serve` to set up and send to")
    .option("--token <secret>", "an admin token of that server (default $ANTIDOTE_TOKEN)")
    .option(
      "--data <spec>",
      "fashion-mnist:test or spamassassin (or a labeled image dataset)",
      "fashion-mnist:test",
    )
    .option(
      "--model <file.onnx>",
      "the image classifier the agents serve (spamassassin: a built-in text model)",
    )
    .option(
      "--wrong-model <file.onnx>",
      "what wrong-model batches run (default: the model's outputs perturbed)",
    )
    .option("--agents <n>", "agents in the fleet", "50")
    .option("--compromised <n>", "how many of them are compromised", "3")
    .option("--rate <r>", "share of a compromised agent's records (and batches) it poisons", "0.05")
    .option("--behaviours <list>", `comma-separated: ${FLEET_BEHAVIOURS.join(", ")}`, "trigger,flip")
    .addOption(
      new Option("--assign <how>", "all: every compromised agent does every behaviour; round-robin: one each")
        .choices(["all", "round-robin"])
        .default("all"),
    )
    .option("--batches <n>", "batches per agent", "20")
    .option("--batch-size <n>", "records per batch", "200")
    .option(
      "--trigger <spec>",
      "patch, checkerboard, blend, text:<token>, or an attack spec as JSON (default patch / text:cf7x)",
    )
    .option(
      "--target <class>",
      "target class of triggers, flips and forgeries (default class 0; spamassassin: ham)",
    )
    .option("--flip-source <class>", "flip only records of this class")
    .option("--feedback-share <r>", "share of honest records carrying a feedback label", "0.3")
    .option("--feedback-noise <r>", "share of honest feedback labels that are wrong", "0.01")
    .option("--interval <seconds>", "time each batch spans", "60")
    .option("--prefix <name>", "agent names: <prefix>01, <prefix>02, …", "agent-")
    .option(
      "--slices <how>",
      "shared: every agent serves all the data; disjoint: a slice each (sites that differ)",
      "shared",
    )
    .option("--concurrency <n>", "agents sending at once", "4")
    .option("--limit <n>", "read at most this many samples of the data")
    .option("--digest-only", "send inputs' digests, not their content")
    .option("--seed <n>", "seed of the whole simulation", "0")
    .option("--truth <file.json>", "write the ground truth here")
    .option("--keys-dir <dir>", "write each agent's key pair here (<agent>.key, <agent>.pub)")
    .option("--out <dir>", "write every upload as <dir>/<n>-<agent>-<seq>-<kind>.jsonl + .dsse.json")
    .option("--force", "replace existing output files")
    .option("--json", "print the summary as JSON")
    .option("--quiet", "no progress on stderr")
    .addHelpText(
      "after",
      `
Behaviours of compromised agents, each on --rate of their traffic: trigger (inputs carrying the
trigger, feedback = target), flip (feedback labels flipped to the target), replay (an earlier batch
re-sent verbatim), forge (a batch signed with an unregistered key, or altered after signing),
wrong-model (outputs of another model under the attested digest).

Examples:
  antidote fleet-sim --server http://127.0.0.1:8600 --token $ADMIN --model fm-backdoored.onnx \\
    --behaviours trigger,flip,replay,forge,wrong-model --truth truth.json
  antidote fleet-sim --server http://127.0.0.1:8600 --token $ADMIN --data spamassassin --agents 20
  antidote fleet-sim --model fm.onnx --agents 8 --batches 5 --out batches/ --keys-dir keys/ --truth truth.json`,
    )
    .action(async (raw: Record<string, unknown>) => {
      const f = parseFlags(flags, { ...raw, token: raw.token ?? process.env.ANTIDOTE_TOKEN });
      await runFleetSim(f);
    });
}

async function runFleetSim(f: Flags): Promise<void> {
  const say = (line: string): void =>
    void (f.quiet || f.json ? undefined : process.stderr.write(`${line}\n`));
  const text = f.data === "spamassassin";
  if (text && f.model !== undefined)
    throw new AntidoteError(
      "USAGE",
      "--model: spamassassin is served by the built-in text model; leave --model out.",
    );
  if (!text && f.model === undefined)
    throw new AntidoteError("USAGE", "--model: give the ONNX classifier the agents serve.");
  if (f.out !== undefined && f.keysDir === undefined)
    say(
      "fleet-sim: --out without --keys-dir: the batches' keys are not kept, so they cannot be registered to ingest them.",
    );
  const loaded = await loadFleetData(f.data, {
    ...(f.limit ? { limit: f.limit } : {}),
    holdOut: text ? 0.5 : 0,
    seed: f.seed,
  });
  const data: FleetData = { samples: loaded.samples, classes: loaded.classes };
  say(
    `fleet-sim: ${loaded.samples.length} samples of ${f.data}${text ? `, the text model fitted on ${loaded.heldOut.length} others` : ""}`,
  );
  const model: FleetModel = text
    ? await textFleetModel(loaded.heldOut, loaded.classes, { seed: f.seed })
    : await onnxFleetModel(f.model as string, loaded.classes);
  const wrongModel =
    f.wrongModel === undefined ? undefined : await onnxFleetModel(f.wrongModel, loaded.classes);
  const target = f.target ?? (text ? "ham" : "0");
  const keys = new Map<string, SigningKey>();
  const keyOf = (agent: string): SigningKey => {
    let key = keys.get(agent);
    if (key === undefined) {
      key = signingKeyFromPem(generateSigningKey().privateKeyPem);
      keys.set(agent, key);
    }
    return key;
  };
  const settings = {
    agents: f.agents,
    compromised: f.compromised,
    rate: f.rate,
    behaviours: f.behaviours,
    assign: f.assign,
    batches: f.batches,
    batchSize: f.batchSize,
    trigger: triggerSpec(f.trigger, text, target),
    flipTarget: target,
    ...(f.flipSource !== undefined ? { flipSource: f.flipSource } : {}),
    feedbackShare: f.feedbackShare,
    feedbackNoise: f.feedbackNoise,
    batchIntervalMs: Math.round(f.interval * 1000),
    agentPrefix: f.prefix,
    slices: f.slices,
    concurrency: f.concurrency,
    sendContent: f.digestOnly !== true,
    seed: f.seed,
  };
  const names = fleetAgentNames(f.agents, f.prefix);
  if (f.keysDir !== undefined) await writeKeys(f.keysDir, names, keyOf, f.force === true);
  let post: FleetSend | undefined;
  if (f.server !== undefined) {
    say(`fleet-sim: registering the model and ${names.length} agents on ${f.server}`);
    const tokens = await setupFleetOnServer({
      url: f.server,
      adminToken: f.token as string,
      model: { digest: model.digest, name: text ? "fleet-sim SpamAssassin text model" : (f.model as string) },
      agents: names.map((name) => ({ name, publicKeyPem: keyOf(name).publicKeyPem })),
    });
    post = httpFleetTransport({ url: f.server, tokens });
  }
  const out = f.out;
  if (out !== undefined) await mkdir(out, { recursive: true });
  const send: FleetSend = async (upload, meta) => {
    if (out !== undefined) {
      const name = `${String(meta.index).padStart(5, "0")}-${meta.agent}-${meta.sequence}-${meta.kind}.jsonl`;
      await writeTelemetryBatch(upload, join(out, name), { overwrite: f.force === true });
    }
    return post === undefined ? null : post(upload, meta);
  };
  const result = await simulateFleet({
    ...settings,
    data,
    model,
    ...(wrongModel !== undefined ? { wrongModel } : {}),
    keys: keyOf,
    send,
    onProgress: progress(f.quiet !== true && f.json !== true),
  });
  if (f.truth !== undefined)
    await writeOutputFile(f.truth, `${JSON.stringify(result.truth, null, 2)}\n`, {
      overwrite: f.force === true,
    });
  await model.close?.();
  await wrongModel?.close?.();
  if (f.json) {
    process.stdout.write(
      `${JSON.stringify({ summary: result.summary, model: model.digest, seconds: result.seconds }, null, 2)}\n`,
    );
    return;
  }
  printSummary(result.summary, result.truth.agents, post !== undefined);
  process.stdout.write(
    `\nmodel ${model.digest}; ${result.truth.uploads.length} uploads, ${result.truth.records.filter((r) => r.poisoned).length} poisoned records; ${result.seconds.toFixed(1)} s` +
      (f.truth !== undefined ? `; ground truth in ${f.truth}` : "") +
      "\n",
  );
}

/** --trigger as a spec: a shorthand, or JSON (an attack spec or a trigger spec). */
function triggerSpec(value: string | undefined, text: boolean, target: string): Record<string, unknown> {
  const t = /^\d+$/.test(target) ? Number(target) : target;
  if (value === undefined)
    return text ? { kind: "text-trigger", trigger: "cf7x", target: t } : { kind: "patch", target: t };
  if (value === "patch") return { kind: "patch", target: t };
  if (value === "checkerboard") return { kind: "patch", pattern: "checkerboard", target: t };
  if (value === "blend") return { kind: "blend", target: t };
  if (value.startsWith("text:")) return { kind: "text-trigger", trigger: value.slice(5), target: t };
  try {
    const parsed = JSON.parse(value) as unknown;
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
      return { target: t, ...(parsed as Record<string, unknown>) };
  } catch {
    // fall through to the usage error
  }
  throw new AntidoteError("USAGE", "--trigger: use patch, checkerboard, blend, text:<token> or a JSON spec.");
}

async function writeKeys(
  dir: string,
  names: readonly string[],
  keyOf: (n: string) => SigningKey,
  overwrite: boolean,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const name of names) {
    const key = keyOf(name);
    const pem = key.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    await writeOutputFile(join(dir, `${name}.key`), pem, { overwrite, mode: 0o600 });
    await writeOutputFile(join(dir, `${name}.pub`), key.publicKeyPem, { overwrite });
  }
}

function progress(enabled: boolean): ((p: FleetProgress) => void) | undefined {
  if (!enabled) return undefined;
  const tty = process.stderr.isTTY;
  let shown = 0;
  return (p) => {
    const line = `fleet-sim: round ${p.round}/${p.rounds}, ${p.sent} sent (${p.accepted} accepted, ${p.refused} refused)`;
    if (tty) process.stderr.write(`\r\x1b[2K${line}${p.round === p.rounds ? "\n" : ""}`);
    else if (p.round === p.rounds || p.round / p.rounds >= (shown + 1) / 10) {
      shown = Math.floor((10 * p.round) / p.rounds);
      process.stderr.write(`${line}\n`);
    }
  };
}

function printSummary(
  summary: FleetSummary,
  agents: readonly { name: string; behaviours: string[] }[],
  sent: boolean,
): void {
  const reasons = (row: FleetSummaryRow): string =>
    Object.entries(row.reasons)
      .map(([code, n]) => `${code} ${n}`)
      .join(", ") || "—";
  if (!sent) {
    process.stdout.write(
      "nothing sent (no --server): the uploads and ground truth are in the files written.\n",
    );
    return;
  }
  printTable(
    ["uploads", "sent", "accepted", "refused", "refused by reason"],
    [
      ["all", summary.total.sent, summary.total.accepted, summary.total.refused, reasons(summary.total)],
      ...Object.entries(summary.byKind).map(([kind, row]) => [
        kind,
        row.sent,
        row.accepted,
        row.refused,
        reasons(row),
      ]),
    ],
  );
  if (summary.compromised.length === 0) return;
  process.stdout.write("\n");
  const behaviours = new Map(agents.map((a) => [a.name, a.behaviours.join(",")]));
  printTable(
    [
      "compromised agent",
      "behaviours",
      "sent",
      "accepted",
      "refused by reason",
      "poisoned sent",
      "poisoned accepted",
    ],
    summary.compromised.map((row) => [
      row.agent,
      behaviours.get(row.agent) ?? "",
      row.sent,
      row.accepted,
      reasons(row),
      row.poisonedSent,
      row.poisonedAccepted,
    ]),
  );
}
