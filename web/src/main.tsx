// The Antidote dashboard: a single-page app over the HTTP API of `antidote serve`. Pages are
// routed on the client (preact-iso); the server answers any non-API path with index.html.
// The pages that draw graphs and reports load on demand, so the Overview paints first.
import { render } from "preact";
import { ErrorBoundary, LocationProvider, Route, Router, lazy, useLocation } from "preact-iso";
import { SignedIn, useAuth } from "./auth";
import { Overview } from "./pages/Overview";
import "./styles.css";
import type { Permission } from "./types";

// Each page's code, loaded on demand; the current page's starts loading at once (below), in
// parallel with the token check, instead of after it.
const load = {
  sources: () => import("./pages/Sources"),
  source: () => import("./pages/Source"),
  versions: () => import("./pages/Versions"),
  version: () => import("./pages/Version"),
  models: () => import("./pages/Models"),
  model: () => import("./pages/Model"),
  jobs: () => import("./pages/Jobs"),
  job: () => import("./pages/Job"),
  sample: () => import("./pages/Sample"),
  deliver: () => import("./pages/Deliver"),
  telemetry: () => import("./pages/Telemetry"),
};
const Sources = lazy(() => load.sources().then((m) => m.Sources));
const SourcePage = lazy(() => load.source().then((m) => m.SourcePage));
const Versions = lazy(() => load.versions().then((m) => m.Versions));
const VersionPage = lazy(() => load.version().then((m) => m.VersionPage));
const Models = lazy(() => load.models().then((m) => m.Models));
const ModelPage = lazy(() => load.model().then((m) => m.ModelPage));
const Jobs = lazy(() => load.jobs().then((m) => m.Jobs));
const JobPage = lazy(() => load.job().then((m) => m.JobPage));
const SamplePage = lazy(() => load.sample().then((m) => m.SamplePage));
const Deliver = lazy(() => load.deliver().then((m) => m.Deliver));
const Telemetry = lazy(() => load.telemetry().then((m) => m.Telemetry));

function preloadCurrentPage(path: string): void {
  const [, first, second] = path.split("/");
  const key = (
    {
      sources: second === undefined || second === "" ? "sources" : "source",
      versions: second === undefined || second === "" ? "versions" : "version",
      models: second === undefined || second === "" ? "models" : "model",
      jobs: second === undefined || second === "" ? "jobs" : "job",
      samples: "sample",
      deliver: "deliver",
      telemetry: "telemetry",
    } as Record<string, keyof typeof load | undefined>
  )[first ?? ""];
  if (key !== undefined) void load[key]();
}
preloadCurrentPage(location.pathname);

// Each entry shows only to a token whose role has the permission (a supplier sees Deliver).
const NAV: { href: string; label: string; needs: Permission }[] = [
  { href: "/", label: "Overview", needs: "read" },
  { href: "/sources", label: "Sources", needs: "read" },
  { href: "/versions", label: "Datasets", needs: "read" },
  { href: "/models", label: "Models", needs: "read" },
  { href: "/telemetry", label: "Telemetry", needs: "read" },
  { href: "/jobs", label: "Jobs", needs: "read" },
  { href: "/deliver", label: "Deliver", needs: "deliver" },
];

function Shell() {
  const { me, signOut, can } = useAuth();
  const { path } = useLocation();
  const current = (href: string) => (href === "/" ? path === "/" : path.startsWith(href));
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/">
          Antidote
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => can(n.needs)).map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={current(n.href) ? "page" : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span data-testid="whoami">
            {me.principal} · <strong>{me.source === null ? me.role : `${me.role}:${me.source}`}</strong>
          </span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <ErrorBoundary>
          <Router>
            <Route path="/" component={can("read") ? Overview : Deliver} />
            <Route path="/sources" component={Sources} />
            <Route path="/sources/:name" component={SourcePage} />
            <Route path="/versions" component={Versions} />
            <Route path="/versions/:version" component={VersionPage} />
            <Route path="/models" component={Models} />
            <Route path="/models/:digest" component={ModelPage} />
            <Route path="/jobs" component={Jobs} />
            <Route path="/jobs/:id" component={JobPage} />
            <Route path="/samples/:digest" component={SamplePage} />
            <Route path="/telemetry" component={Telemetry} />
            <Route path="/deliver" component={Deliver} />
            <Route default component={NotFound} />
          </Router>
        </ErrorBoundary>
      </main>
    </>
  );
}

function NotFound() {
  return (
    <>
      <h1>Not found</h1>
      <p>
        This page does not exist. <a href="/">Back to the overview</a>.
      </p>
    </>
  );
}

function App() {
  return (
    <LocationProvider>
      <SignedIn>
        <Shell />
      </SignedIn>
    </LocationProvider>
  );
}

const root = document.getElementById("app");
if (root !== null) render(<App />, root);
