// The HTTP shell of `antidote serve`: the app (routes and middleware) and a server around it.
// Like cli/, nothing in the library depends on it.
export { createApp } from "./app.js";
export { startServer, type RunningServer, type StartServerOptions } from "./serve.js";
export { openRequestIdStore, type RequestIdStore } from "./request-ids.js";
export { REQUEST_ID_HEADER } from "./middleware/replay.js";
export { HttpError, statusFor, type ApiErrorCode, type ErrorBody } from "./errors.js";
export { DEFAULT_LIMITS, type AppDeps, type AppEnv, type ServerLimits } from "./types.js";
