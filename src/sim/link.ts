import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Transport } from '../agent/sync/client.ts';

/** The state of one device's link to the server; changed at any time by a drill. */
export type LinkState = {
  online: boolean;
  /** Added before each request reaches the server: a slow or distant link. */
  delayMs: number;
  /** Share of requests lost, in [0, 1]: half before the server sees them, half on the way back. */
  lossRatio: number;
};

export const goodLink = (): LinkState => ({ online: true, delayMs: 0, lossRatio: 0 });

/** A failure shaped as fetch reports one (`TypeError` with a system error as cause), so the client names it as it would on a real network. */
function networkError(code: string, message: string): TypeError {
  return new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code }) });
}

/**
 * Puts a link between an agent and the in-process server. A cut link refuses at once
 * (EHOSTUNREACH) like a route that is gone; a lossy one resets some connections (ECONNRESET), and
 * for half of those the server has already acted, which is what at-least-once delivery must survive.
 */
export function withLink(inner: Transport, link: LinkState, random: () => number): Transport {
  return async (url, init) => {
    if (!link.online) throw networkError('EHOSTUNREACH', 'connect EHOSTUNREACH (simulated link down)');
    if (link.delayMs > 0) {
      try {
        await sleepFor(link.delayMs, undefined, init.signal ? { signal: init.signal } : {});
      } catch (error) {
        // A deadline shorter than the link's delay: the caller sees its own timeout, as with fetch.
        init.signal?.throwIfAborted();
        throw error;
      }
      if (!link.online) throw networkError('EHOSTUNREACH', 'connect EHOSTUNREACH (simulated link down)');
    }
    if (link.lossRatio > 0) {
      const roll = random();
      if (roll < link.lossRatio / 2) throw networkError('ECONNRESET', 'read ECONNRESET (simulated loss before the server)');
      if (roll < link.lossRatio) {
        await inner(url, init);
        throw networkError('ECONNRESET', 'read ECONNRESET (simulated loss of the answer)');
      }
    }
    return inner(url, init);
  };
}
