// Monitoring deployed models (DESIGN.md, src/monitor/): the telemetry format and its signed
// intake, the monitors and their alerts, containment, the closed-loop gate into the next
// training set, and the agent side — a client and a fleet simulator with ground truth.
export * from "./schema.js";
export { ingestTelemetry, type IngestTelemetryOptions } from "./intake.js";
export {
  readTelemetryBatch,
  readDecodedTelemetryBatch,
  telemetryDir,
  statementOf,
  type StoredTelemetryBatch,
} from "./store.js";
export {
  TELEMETRY_REFUSAL_CODES,
  telemetryRefusals,
  telemetryRefusalCounts,
  type TelemetryRefusal,
  type TelemetryRefusalCount,
  type TelemetryRefusalCode,
} from "./refusals.js";
export { suspendModel, resumeModel, quarantineTelemetry, releaseTelemetry } from "./containment.js";
export { createIntakeThreads } from "./intake-threads.js";
export { checkRecordsInThread, type RecordsCheck } from "./intake-thread.js";
export * from "./monitors/index.js";
export * from "./sequential.js";
export {
  monitorBaseline,
  monitorBaselineSchema,
  parseMonitorBaseline,
  type MonitorBaseline,
} from "./baseline.js";
export {
  createAlertSink,
  verifyWebhookSignature,
  signWebhookBody,
  SIGNATURE_HEADER,
  DELIVERY_HEADER,
  type AlertSink,
  type DeliveryResult,
} from "./alerts.js";
export {
  prepareMonitoring,
  readMonitorSetup,
  monitorSetupSchema,
  type MonitorSetup,
  type PreparedMonitoring,
  type PrepareOptions,
} from "./setup.js";
export { createMonitorRunner, type MonitorRunner, type MonitorRunResult } from "./runner.js";
export { buildTrainingCandidate, type GateOptions, type GateResult, type BatchExclusion } from "./gate.js";
export * from "./client.js";
export * from "./fleet-sim.js";
export * from "./fleet/model.js";
export * from "./fleet/transport.js";
export * from "./fleet/server.js";
export * from "./fleet/trigger.js";
export * from "./fleet/truth.js";
export { fleetAgentNames } from "./fleet/plan.js";
export {
  fleetStatus,
  fleetStatusOptionsSchema,
  MONITOR_CHECK_PREFIX,
  type FleetStatus,
  type FleetStatusOptions,
  type AgentStatus,
  type FleetModelStatus,
  type FleetAlert,
  type RefusalsByCode,
} from "./fleet-status.js";
