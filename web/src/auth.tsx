// Sign-in: the user pastes an API token (made with `antidote token create`); the dashboard
// asks the server who it is (GET /v1/whoami) and keeps it in sessionStorage. The role decides
// which actions a page offers — a convenience only: every action is checked again by the
// server, which answers 403 to a token whose role may not take it.
import { createContext } from "preact";
import type { ComponentChildren } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import { ApiError, get, onUnauthorized, session } from "./api";
import type { Permission, WhoAmI } from "./types";

interface AuthState {
  me: WhoAmI;
  can: (permission: Permission) => boolean;
  signOut: () => void;
}

const AuthContext = createContext<AuthState | null>(null);

export function useAuth(): AuthState {
  const auth = useContext(AuthContext);
  if (auth === null) throw new Error("useAuth outside <SignedIn>");
  return auth;
}

/** Shows the sign-in form until a token is accepted, then `children` with the token's grant. */
const WHO_KEY = "antidote.whoami";

/** The grant last read for this tab's token: a reload shows the page at once, then re-checks. */
function cachedGrant(): WhoAmI | null {
  const saved = session.token === null ? null : sessionStorage.getItem(WHO_KEY);
  return saved === null ? null : (JSON.parse(saved) as WhoAmI);
}

export function SignedIn({ children }: { children: ComponentChildren }) {
  const [me, setMeState] = useState<WhoAmI | null>(cachedGrant);
  const [checking, setChecking] = useState(session.token !== null && me === null);
  const [error, setError] = useState<string | null>(null);
  const setMe = (who: WhoAmI | null) => {
    if (who === null) sessionStorage.removeItem(WHO_KEY);
    else sessionStorage.setItem(WHO_KEY, JSON.stringify(who));
    setMeState(who);
  };

  const signOut = () => {
    session.clear();
    setMe(null);
  };
  useEffect(() => onUnauthorized(signOut), []);
  // Re-check the token with the server (revoked or expired since: back to the sign-in form).
  useEffect(() => {
    if (session.token === null) return;
    get<WhoAmI>("/whoami").then(
      (who) => {
        setMe(who);
        setChecking(false);
      },
      () => {
        signOut();
        setChecking(false);
      },
    );
  }, []);

  const signIn = async (token: string) => {
    setError(null);
    session.set(token.trim());
    try {
      setMe(await get<WhoAmI>("/whoami"));
    } catch (e) {
      session.clear();
      setError(e instanceof ApiError ? e.message : "the server could not be reached.");
    }
  };

  if (checking)
    return (
      <p class="loading" role="status">
        Checking your token…
      </p>
    );
  if (me === null) return <SignInForm onSubmit={signIn} error={error} />;
  const state: AuthState = { me, can: (p) => me.permissions.includes(p), signOut };
  return <AuthContext.Provider value={state}>{children}</AuthContext.Provider>;
}

function SignInForm({
  onSubmit,
  error,
}: {
  onSubmit: (token: string) => Promise<void>;
  error: string | null;
}) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <main class="signin" id="main">
      <h1>Antidote</h1>
      <p>
        Sign in with an API token. An administrator makes one with <code>antidote token create</code>.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          void onSubmit(token).finally(() => setBusy(false));
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          placeholder="adt_…"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy || token.trim() === ""}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error !== null && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <p class="muted">
          The token is kept in this tab only (sessionStorage) and sent to this server alone.
        </p>
      </form>
    </main>
  );
}
