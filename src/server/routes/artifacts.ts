import type { KeyObject } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { ArtifactStatement, signArtifact, type ArtifactRef } from '../../protocol/artifacts.ts';
import { DriftlessError } from '../../protocol/errors.ts';
import { Sha256Hex } from '../../protocol/resources.ts';
import type { RouteDeps } from '../app.ts';
import type { ArtifactFiles } from '../artifacts/artifact-files.ts';

/** Where the server keeps artifacts and the key it signs them with. */
export type ArtifactDeps = { files: ArtifactFiles; signingKey: KeyObject; maxBytes?: number };

export const MAX_ARTIFACT_BYTES = 256 * 1024 * 1024;

const PushQuery = Type.Object({ name: ArtifactStatement.properties.name, version: ArtifactStatement.properties.version }, { additionalProperties: false });
const DigestParams = Type.Object({ digest: Sha256Hex });

/**
 * Artifacts: operators upload raw bytes (`application/octet-stream`), the server names them by
 * their SHA-256 and signs `{ name, version, sha256, size }`; devices download them by digest.
 */
export function registerArtifactRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { store } = deps;
  const artifacts = (): ArtifactDeps => {
    if (!deps.artifacts) throw new DriftlessError('unavailable', 'this server keeps no artifacts (it was started without a data directory)');
    return deps.artifacts;
  };
  const refOf = (a: ArtifactRef): ArtifactRef => ({ name: a.name, version: a.version, sha256: a.sha256, size: a.size, signature: a.signature });

  void app.register(async (scope) => {
    // The body stays a stream: it goes to disk as it arrives, hashed on the way, never held in memory.
    scope.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

    scope.post<{ Querystring: Static<typeof PushQuery>; Body: AsyncIterable<Uint8Array> }>(
      '/v1/artifacts',
      { config: { access: 'operator' }, schema: { tags: ['artifacts'], summary: 'Upload an artifact (raw bytes); answers its digest and signature', querystring: PushQuery } },
      async (request, reply) => {
        const { files, signingKey, maxBytes = MAX_ARTIFACT_BYTES } = artifacts();
        if (request.body === undefined || request.body === null) throw new DriftlessError('invalid-input', 'request body: the artifact bytes are missing (send them as application/octet-stream)');
        const length = request.headers['content-length'];
        const expectedBytes = length === undefined ? undefined : Number(length);
        if (expectedBytes !== undefined && expectedBytes > maxBytes) throw new DriftlessError('payload-too-large', `artifact is larger than ${maxBytes} bytes`);
        const { sha256, size } = await files.receive(request.body, { maxBytes, ...(expectedBytes === undefined ? {} : { expectedBytes }) });
        const { name, version } = request.query;
        const existing = await store.getArtifact(sha256);
        if (existing) {
          if (existing.name === name && existing.version === version) return refOf(existing);
          throw new DriftlessError('conflict', `these bytes were already uploaded as ${existing.name} ${existing.version} (${sha256})`);
        }
        const taken = (await store.listArtifacts()).find((a) => a.name === name && a.version === version);
        if (taken) {
          // The file is named by its digest alone: another tenant may hold the same bytes.
          if (!(await deps.serverStore.getArtifact(sha256))) await files.remove(sha256);
          throw new DriftlessError('conflict', `${name} ${version} already exists with other bytes (${taken.sha256}); give the new upload another version`);
        }
        const statement = { name, version, sha256, size };
        const record = { ...statement, signature: signArtifact(signingKey, statement), createdAt: new Date(deps.now()).toISOString() };
        await store.putArtifact(record);
        void reply.status(201);
        return refOf(record);
      },
    );
  });

  app.get('/v1/artifacts', { config: { access: 'viewer' }, schema: { tags: ['artifacts'], summary: 'Uploaded artifacts, newest first' } }, async () => {
    return (await store.listArtifacts()).map((a) => ({ ...refOf(a), createdAt: a.createdAt }));
  });

  app.get<{ Params: Static<typeof DigestParams> }>(
    '/v1/device/artifacts/:digest',
    { config: { access: 'device' }, schema: { tags: ['device'], summary: "An artifact's bytes, by digest", params: DigestParams } },
    async (request, reply) => {
      const sha256 = request.params.digest;
      const file = (await store.getArtifact(sha256)) ? await artifacts().files.open(sha256) : null;
      if (!file) throw new DriftlessError('not-found', `no artifact ${sha256}`);
      return reply.type('application/octet-stream').header('content-length', String(file.size)).send(file.stream);
    },
  );
}
