// The jobs Antidote runs, by kind. An engine given no `runners` runs these; tests and library
// users may pass their own list (a runner is a kind, a zod schema for its parameters and `run`).
import type { JobRunner } from "../types.js";
import { auditRunner } from "./audit.js";
import { exportRunner } from "./export.js";
import { scanRunner } from "./scan.js";

export { auditParameters, auditRunner, AUDIT_MODEL_INPUT } from "./audit.js";
export { exportParameters, exportRunner, EXPORT_FORMATS } from "./export.js";
export { scanParameters, scanRunner } from "./scan.js";

export const JOB_RUNNERS: readonly JobRunner[] = [scanRunner, exportRunner, auditRunner];
