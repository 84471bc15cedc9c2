import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { generateKeyPair } from '../../src/protocol/signing.ts';
import { assembleServer, type AssembleOptions } from '../../src/server/assemble.ts';
import { hashToken } from '../../src/server/auth/tokens.ts';
import { migrateToLatest } from '../../src/server/store/migrate.ts';
import { openSqlite } from '../../src/server/store/sqlite.ts';
import { createSqlStore, type Store } from '../../src/server/store/store.ts';

/**
 * The server as server.ts assembles it, on an in-memory SQLite store, without listening: for
 * API tests through `app.inject()`. The clock is the test's to move; tokens are made up front.
 */
export type InProcessServer = {
  app: FastifyInstance;
  /** The store as the test sees it (the server may be given a wrapped one, see `serve`). */
  store: Store;
  clock: { ms: number };
  signing: { privateKey: string; publicKey: string };
  /** One rollout tick, as the server's timer runs it. */
  tick(): Promise<void>;
  close(): Promise<void>;
};

export type InProcessOptions = Partial<Omit<AssembleOptions, 'store' | 'now'>> & {
  start: number;
  /** API tokens to create: secret → role (the role is also the token's id). */
  tokens?: Record<string, 'viewer' | 'operator' | 'admin'>;
  /** The bootstrap enrollment token, if the test enrolls devices. */
  enrollToken?: string;
  /** Runs on the fresh store before the server starts (more tokens, devices…). */
  seed?: (store: Store, nowIso: string) => Promise<void>;
  /** The store the server is given, made from the test's (a broken one, say). */
  serve?: (store: Store) => Store;
};

export async function startInProcessServer(opts: InProcessOptions): Promise<InProcessServer> {
  const { start, tokens = {}, enrollToken, seed, serve, ...assemble } = opts;
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const clock = { ms: start };
  const nowIso = new Date(start).toISOString();
  for (const [secret, role] of Object.entries(tokens)) {
    await store.insertApiToken({ id: role, tokenHash: hashToken(secret), role, description: role, createdAt: nowIso, expiresAt: null, revokedAt: null });
  }
  if (enrollToken !== undefined) {
    await store.insertEnrollToken({ id: 'bootstrap', tokenHash: hashToken(enrollToken), description: 'bootstrap', createdAt: nowIso, expiresAt: null, revokedAt: null });
  }
  await seed?.(store, nowIso);
  const signing = assemble.signing ?? generateKeyPair();
  const { app, tickRollouts } = await assembleServer({
    sessionSecret: randomBytes(32),
    pollSeconds: 30,
    isOnline: () => true,
    ...assemble,
    signing,
    store: serve ? serve(store) : store,
    now: () => clock.ms,
  });
  await app.ready();
  return {
    app,
    store,
    clock,
    signing,
    tick: () => tickRollouts(),
    async close() {
      await app.close();
      await db.destroy();
    },
  };
}

/** The body of a successful answer (200 unless told), as T; fails with the body when the status differs. */
export function ok<T = unknown>(reply: LightMyRequestResponse, status = 200): T {
  assert.equal(reply.statusCode, status, reply.body);
  return reply.json() as T;
}

/** A refusal in the API's one error shape, `{ error: { code, message } }`; returns the message. */
export function refused(reply: LightMyRequestResponse, status: number, code: string, message?: RegExp): string {
  assert.equal(reply.statusCode, status, reply.body);
  const body = reply.json() as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(body), ['error'], reply.body);
  assert.equal(body.error.code, code, reply.body);
  if (message) assert.match(body.error.message, message);
  return body.error.message;
}
