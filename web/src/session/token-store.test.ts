import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { readToken, takeTokenFromFragment, writeToken } from './token-store.ts';

/**
 * The store uses three parts of the page: localStorage, location and history. Outside a browser a
 * stand-in `window` with just those parts is enough; it records what the store does with them.
 */
type Page = { items: Map<string, string>; replaced: string[]; location: { hash: string; pathname: string; search: string } };

function openPage(href: string, { storage = true } = {}): Page {
  const url = new URL(href);
  const page: Page = { items: new Map(), replaced: [], location: { hash: url.hash, pathname: url.pathname, search: url.search } };
  const localStorage = {
    getItem: (key: string) => page.items.get(key) ?? null,
    setItem: (key: string, value: string) => void page.items.set(key, value),
    removeItem: (key: string) => void page.items.delete(key),
  };
  const history = {
    state: { from: 'router' },
    replaceState(state: unknown, _title: string, target: string) {
      assert.deepEqual(state, { from: 'router' }, 'the router’s history state is kept');
      page.replaced.push(target);
      page.location.hash = '';
    },
  };
  const window = {
    location: page.location,
    history,
    // Storage disabled (a private window, a blocked site) throws on access.
    get localStorage() {
      if (!storage) throw new DOMException('The operation is insecure.', 'SecurityError');
      return localStorage;
    },
  };
  Object.defineProperty(globalThis, 'window', { value: window, configurable: true, writable: true });
  return page;
}

afterEach(() => {
  delete (globalThis as { window?: unknown }).window;
});

describe('token store', () => {
  test('a written token is read back under driftless.token, and null removes it', () => {
    const page = openPage('http://localhost/');
    assert.equal(readToken(), null);
    writeToken('tok-1');
    assert.deepEqual([...page.items], [['driftless.token', 'tok-1']]);
    assert.equal(readToken(), 'tok-1');
    writeToken(null);
    assert.equal(page.items.size, 0);
    assert.equal(readToken(), null);
  });

  test('with storage disabled, there is no token and writing does not throw', () => {
    openPage('http://localhost/', { storage: false });
    assert.equal(readToken(), null);
    assert.doesNotThrow(() => writeToken('tok-1'));
    assert.doesNotThrow(() => writeToken(null));
  });
});

describe('takeTokenFromFragment', () => {
  test('takes #token= and removes the fragment, keeping path and query', () => {
    const page = openPage('https://fleet.example/devices/dev-1?site=lyon#token=abc123');
    assert.equal(takeTokenFromFragment(), 'abc123');
    assert.deepEqual(page.replaced, ['/devices/dev-1?site=lyon']);
  });

  test('finds the token among other fragment parameters and decodes it', () => {
    openPage('http://localhost/#tab=logs&token=a%2Bb%3D%3D&x=1');
    assert.equal(takeTokenFromFragment(), 'a+b==');
    openPage('http://localhost/#token=first&other=2');
    assert.equal(takeTokenFromFragment(), 'first');
  });

  test('leaves the address alone when there is no token in the fragment', () => {
    for (const href of ['http://localhost/devices', 'http://localhost/#', 'http://localhost/#section', 'http://localhost/#token=', 'http://localhost/#mytoken=abc', 'http://localhost/?token=abc']) {
      const page = openPage(href);
      assert.equal(takeTokenFromFragment(), null, href);
      assert.deepEqual(page.replaced, [], href);
    }
  });

  test('a mangled link (a cut escape) gives no token, does not throw, and the fragment still goes', () => {
    for (const hash of ['#token=%E0%A4%A', '#token=%', '#token=abc%zz']) {
      const page = openPage(`http://localhost/overview${hash}`);
      assert.equal(takeTokenFromFragment(), null, hash);
      assert.deepEqual(page.replaced, ['/overview'], hash);
    }
  });
});
