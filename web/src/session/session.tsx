import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { useLocation } from 'wouter';
import { createApiClient, type ApiClient } from '../api/api-client.ts';
import type { Role, Whoami } from '../api/resources.ts';
import { readToken, takeTokenFromFragment, writeToken } from './token-store.ts';

/**
 * Who is signed in, and the API client that carries their token. One provider at the top of the
 * app; pages reach the client through `useApi()` and the role through `useSession()`.
 */
export type Session = {
  token: string | null;
  whoami: Whoami | null;
  api: ApiClient;
  /** Checks a token with GET /v1/whoami and keeps it only if the server accepts it. */
  signIn: (token: string) => Promise<void>;
  signOut: () => void;
};

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [location, navigate] = useLocation();
  const [token, setToken] = useState<string | null>(() => {
    const fromLink = takeTokenFromFragment();
    if (fromLink) writeToken(fromLink);
    return readToken();
  });
  const [whoami, setWhoami] = useState<Whoami | null>(null);
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const locationRef = useRef(location);
  locationRef.current = location;

  const dropSession = useCallback(() => {
    writeToken(null);
    tokenRef.current = null;
    setToken(null);
    setWhoami(null);
    if (locationRef.current !== '/sign-in') navigate('/sign-in', { replace: true });
  }, [navigate]);

  const api = useMemo(() => createApiClient({ token: () => tokenRef.current, onUnauthorized: dropSession }), [dropSession]);

  // A #token= link followed while the app is already open changes only the fragment: no reload.
  useEffect(() => {
    const onHash = () => {
      const fromLink = takeTokenFromFragment();
      if (!fromLink) return;
      writeToken(fromLink);
      tokenRef.current = fromLink;
      setToken(fromLink);
      setWhoami(null);
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  // A stored token or one from a link is checked once, which also tells the page the role.
  useEffect(() => {
    if (!token) {
      if (locationRef.current !== '/sign-in') navigate('/sign-in', { replace: true });
      return;
    }
    if (whoami) return;
    const controller = new AbortController();
    api.get<Whoami>('/v1/whoami', controller.signal).then(setWhoami, () => {
      // A 401 already went to sign-in; other failures leave the role unknown until the next try.
    });
    return () => controller.abort();
  }, [token, whoami, api, navigate]);

  const signIn = useCallback(
    async (candidate: string) => {
      // Checked with its own client so a wrong token shows its error here instead of redirecting.
      const probe = createApiClient({ token: () => candidate, onUnauthorized: () => {} });
      const who = await probe.get<Whoami>('/v1/whoami');
      writeToken(candidate);
      tokenRef.current = candidate;
      setToken(candidate);
      setWhoami(who);
      navigate('/');
    },
    [navigate],
  );

  const signOut = useCallback(() => dropSession(), [dropSession]);

  const value = useMemo<Session>(() => ({ token, whoami, api, signIn, signOut }), [token, whoami, api, signIn, signOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionProvider');
  return session;
}

export const useApi = (): ApiClient => useSession().api;

/** Operators and admins change things (pause, resume, abort, roll back, terminal); viewers only look. */
export function canOperate(role: Role | undefined): boolean {
  return role === 'operator' || role === 'admin';
}

