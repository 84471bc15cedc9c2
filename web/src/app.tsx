import { Route, Switch } from 'wouter';
import { AppShell } from './app-shell.tsx';
import { LiveStatusProvider } from './live/live-status.tsx';
import { AuditPage } from './pages/audit-page.tsx';
import { DevicePage } from './pages/device-page.tsx';
import { DevicesPage } from './pages/devices-page.tsx';
import { DriftPage } from './pages/drift-page.tsx';
import { IncidentPage } from './pages/incident-page.tsx';
import { IncidentsPage } from './pages/incidents-page.tsx';
import { NotFoundPage } from './pages/not-found-page.tsx';
import { OverviewPage } from './pages/overview-page.tsx';
import { RolloutPage } from './pages/rollout-page.tsx';
import { RolloutsPage } from './pages/rollouts-page.tsx';
import { SignInPage } from './pages/sign-in-page.tsx';
import { SitesPage } from './pages/sites-page.tsx';
import { SessionProvider, useSession } from './session/session.tsx';

/** The routes of the contract; every page but sign-in sits in the shell and needs a token. */
export function App() {
  return (
    <LiveStatusProvider>
      <SessionProvider>
        <Switch>
          <Route path="/sign-in" component={SignInPage} />
          <Route>
            <SignedIn />
          </Route>
        </Switch>
      </SessionProvider>
    </LiveStatusProvider>
  );
}

function SignedIn() {
  const { token } = useSession();
  // Without a token the session provider is already on its way to /sign-in.
  if (!token) return null;
  return (
    <AppShell>
      <Switch>
        <Route path="/" component={OverviewPage} />
        <Route path="/rollouts" component={RolloutsPage} />
        <Route path="/rollouts/:name">{(params) => <RolloutPage key={params.name} name={params.name} />}</Route>
        <Route path="/drift" component={DriftPage} />
        <Route path="/devices" component={DevicesPage} />
        <Route path="/devices/:name">{(params) => <DevicePage key={params.name} name={params.name} />}</Route>
        <Route path="/sites" component={SitesPage} />
        <Route path="/incidents" component={IncidentsPage} />
        <Route path="/incidents/:id">{(params) => <IncidentPage key={params.id} id={params.id} />}</Route>
        <Route path="/audit" component={AuditPage} />
        <Route component={NotFoundPage} />
      </Switch>
    </AppShell>
  );
}
