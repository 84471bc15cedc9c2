import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/api-client.ts';
import { useSession } from '../session/session.tsx';

/** Sign in with an API token (`driftless token create`, or the link `driftless demo` prints). */
export function SignInPage() {
  const { signIn } = useSession();
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(token.trim());
    } catch (cause) {
      setError(cause instanceof ApiError ? cause.message : String(cause));
      setBusy(false);
    }
  };

  return (
    <main className="sign-in" id="main">
      <form className="sign-in__card" onSubmit={submit}>
        <p className="brand brand--large">
          <span className="brand__mark" aria-hidden="true" />
          Driftless
        </p>
        <h1>Sign in</h1>
        <p className="muted">Paste an API token. Create one with <code>driftless token create --role viewer</code>.</p>
        <label htmlFor="token">API token</label>
        <input id="token" type="password" autoComplete="current-password" value={token} onChange={(e) => setToken(e.target.value)} autoFocus />
        {error ? (
          <p className="notice notice--error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" className="button button--primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
