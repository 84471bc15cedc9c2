import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sha256Hex } from '../../protocol/canonical.ts';
import { createArtifactFiles } from './artifact-files.ts';

async function* chunks(parts: Buffer[], failAfter = Infinity): AsyncGenerator<Uint8Array> {
  for (const [i, part] of parts.entries()) {
    if (i >= failAfter) throw new Error('connection reset');
    yield part;
  }
}

describe('artifact files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-artifact-files-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an upload lands whole under its digest', async () => {
    const files = createArtifactFiles(dir);
    const parts = [randomBytes(70_000), randomBytes(10)];
    const { sha256, size } = await files.receive(chunks(parts), { maxBytes: 1e6, expectedBytes: 70_010 });
    assert.equal(sha256, sha256Hex(Buffer.concat(parts)));
    assert.equal(size, 70_010);
    assert.deepEqual(readFileSync(join(dir, sha256)), Buffer.concat(parts));
    assert.equal((await files.open(sha256))?.size, 70_010);
  });

  test('a failed, short or oversized upload leaves no file; a stray temporary file is removed at start', async () => {
    const files = createArtifactFiles(dir);
    const before = readdirSync(dir).sort();
    await assert.rejects(files.receive(chunks([randomBytes(100), randomBytes(100)], 1), { maxBytes: 1e6 }), /upload failed: connection reset/);
    await assert.rejects(files.receive(chunks([randomBytes(100)]), { maxBytes: 1e6, expectedBytes: 200 }), /cut short: 100 of 200/);
    await assert.rejects(files.receive(chunks([randomBytes(100), randomBytes(100)]), { maxBytes: 150 }), /larger than 150 bytes/);
    assert.deepEqual(readdirSync(dir).sort(), before);
    writeFileSync(join(dir, 'upload-crashed.tmp'), 'half');
    createArtifactFiles(dir);
    assert.deepEqual(readdirSync(dir).sort(), before);
  });

  test('names that are not digests are refused, never joined into a path', async () => {
    const files = createArtifactFiles(dir);
    await assert.rejects(files.open('../../etc/passwd'), /not a SHA-256 digest/);
    assert.equal(await files.open('0'.repeat(64)), null);
  });
});
