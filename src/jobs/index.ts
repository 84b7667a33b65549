// Jobs: scans, audits and exports handed to a queue and run by a runner, on one of two engines
// behind the same `JobQueue` contract (types.ts) — in-process, persisted in the ledger database
// (`antidote serve`), or BullMQ on Redis with any number of workers (`antidote serve --redis`,
// `antidote worker`).
export * from "./types.js";
export { JOB_RUNNERS, scanRunner, exportRunner, auditRunner, AUDIT_MODEL_INPUT } from "./runners/index.js";
export { scanParameters, exportParameters, auditParameters, EXPORT_FORMATS } from "./runners/index.js";
export { createInProcessQueue, type InProcessQueueOptions } from "./in-process/queue.js";
export { createBullmqQueue, type BullmqQueueOptions } from "./bullmq/queue.js";
export { startWorker, type JobWorker, type WorkerEvent, type WorkerOptions } from "./bullmq/worker.js";
export { DEFAULT_QUEUE_NAME, maskRedisUrl } from "./bullmq/connection.js";
export { MAX_ATTEMPTS } from "./record.js";
