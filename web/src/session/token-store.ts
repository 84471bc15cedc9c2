/** Where the signed-in token lives between visits, under the key the contract names. */
const KEY = 'driftless.token';

export function readToken(): string | null {
  try {
    return window.localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function writeToken(token: string | null): void {
  try {
    if (token === null) window.localStorage.removeItem(KEY);
    else window.localStorage.setItem(KEY, token);
  } catch {
    // Storage can be disabled (private mode); the session then lasts as long as the page.
  }
}

/**
 * `#token=XYZ` on any page signs in with that token (the demo prints such a link). The fragment is
 * removed at once so the token does not linger in the address bar, the history or a copied link.
 */
export function takeTokenFromFragment(): string | null {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match) return null;
  let token: string | null;
  try {
    token = decodeURIComponent(match[1]!);
  } catch {
    token = null; // a mangled link (`%E0%A4` cut short): no token, but the fragment still goes
  }
  window.history.replaceState(window.history.state, '', window.location.pathname + window.location.search);
  return token;
}
