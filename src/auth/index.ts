// API tokens and roles for `antidote serve`: who a request speaks for and what it may do.
export {
  authenticate,
  createToken,
  parseExpiry,
  principalSchema,
  revokeToken,
  tokenIdOf,
  type Authenticated,
  type AuthFailure,
  type AuthResult,
  type CreateTokenInput,
  type CreatedToken,
  type TokenOptions,
} from "./tokens.js";
export {
  PERMISSIONS,
  ROLE_PERMISSIONS,
  boundToSource,
  formatRole,
  hasPermission,
  parseRole,
  type Permission,
  type RoleSpec,
} from "./roles.js";
