import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createRandom } from '../../sim/random.ts';
import { createPowerCutFileSystem, PowerCut, type PowerCutFileSystem } from './power-cut-fs.ts';
import { createDirFileSystem, createStorage, type FileSystem } from './storage.ts';

const text = (fs: FileSystem, name: string) => fs.read(name)?.toString('utf8') ?? null;
const SEEDS = 300;

/** Every distinct outcome of a power cut now, over many seeds. */
function outcomes(fs: PowerCutFileSystem, look: (after: FileSystem) => string): Set<string> {
  const seen = new Set<string>();
  for (let seed = 1; seed <= SEEDS; seed++) seen.add(look(fs.crash(createRandom(seed).next)));
  return seen;
}

const root = mkdtempSync(join(tmpdir(), 'driftless-power-cut-fs-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

// While the power is on, the model behaves as the real directory does: the same script on both.
for (const [kind, make] of [
  ['the power-cut model', () => createPowerCutFileSystem()],
  ['the real directory', () => createDirFileSystem(join(root, `dir-${++dirs}`))],
] as const) {
  describe(`file system seam: ${kind}`, () => {
    test('reads what was written, lists names, renames over and removes', () => {
      const fs: FileSystem = make();
      assert.equal(fs.read('a'), null);
      fs.writeFile('a', Buffer.from('one'));
      fs.writeFile('b', Buffer.from('two'));
      fs.writeFile('a', Buffer.from('1'));
      assert.equal(text(fs, 'a'), '1');
      fs.rename('b', 'a');
      assert.equal(text(fs, 'a'), 'two');
      assert.equal(fs.read('b'), null);
      fs.fsync('a');
      fs.syncDir();
      fs.remove('a');
      fs.remove('missing');
      assert.deepEqual(fs.list(), []);
      assert.throws(() => fs.rename('missing', 'x'), { code: 'ENOENT' });
      assert.throws(() => fs.fsync('missing'), { code: 'ENOENT' });
    });
  });
}

describe('power-cut file system', () => {
  test('what was fsynced and whose name was synced survives every crash', () => {
    const fs = createPowerCutFileSystem();
    fs.writeFile('a', Buffer.from('alpha'));
    fs.fsync('a');
    fs.syncDir();
    assert.deepEqual(outcomes(fs, (d) => `${d.list().join()}=${text(d, 'a')}`), new Set(['a=alpha']));
  });

  test('an unsynced write is dropped or torn to a prefix, never anything else', () => {
    const fs = createPowerCutFileSystem(new Map([['a', Buffer.from('old')]]));
    fs.writeFile('a', Buffer.from('new content'));
    const seen = outcomes(fs, (d) => text(d, 'a')!);
    for (const value of seen) assert.ok(value === 'old' || 'new content'.startsWith(value), `impossible content "${value}"`);
    assert.ok(seen.has('old'), 'dropped');
    assert.ok(seen.has(''), 'torn to nothing');
    assert.ok(seen.has('new content'), 'reached the disk whole');
    assert.ok([...seen].some((v) => v.length > 0 && v.length < 'new content'.length), 'torn in the middle');
  });

  test('a file fsynced but not named in a synced directory may vanish', () => {
    const fs = createPowerCutFileSystem();
    fs.writeFile('a', Buffer.from('alpha'));
    fs.fsync('a');
    assert.deepEqual(outcomes(fs, (d) => String(text(d, 'a'))), new Set(['null', 'alpha']));
  });

  test('an unsynced rename leaves the old file or the new one, never a mix', () => {
    const fs = createPowerCutFileSystem(new Map([['doc', Buffer.from('old')]]));
    fs.writeFile('doc.tmp', Buffer.from('new'));
    fs.fsync('doc.tmp');
    fs.rename('doc.tmp', 'doc');
    const seen = outcomes(fs, (d) => `${d.list().sort().join()}:${text(d, 'doc')}`);
    // The creation of doc.tmp and the rename are applied as a prefix: none, the first, or both.
    assert.deepEqual(seen, new Set(['doc:old', 'doc,doc.tmp:old', 'doc:new']));
  });

  test('unsynced directory operations survive as a prefix in the order they were made', () => {
    const fs = createPowerCutFileSystem(new Map([['a', Buffer.from('a')], ['b', Buffer.from('b')], ['c', Buffer.from('c')]]));
    fs.remove('a');
    fs.remove('b');
    fs.remove('c');
    assert.deepEqual(outcomes(fs, (d) => d.list().sort().join()), new Set(['a,b,c', 'b,c', 'c', '']));
  });

  test('syncDir makes names durable but not unsynced content', () => {
    const fs = createPowerCutFileSystem();
    fs.writeFile('a', Buffer.from('alpha'));
    fs.syncDir();
    const seen = outcomes(fs, (d) => String(text(d, 'a')));
    assert.ok(!seen.has('null'), 'the name is durable');
    assert.ok(seen.has('') && seen.has('alpha'), 'the content is not');
  });

  test('crashAfter(n) lets n operations complete, then the power is off for good', () => {
    const fs = createPowerCutFileSystem();
    fs.writeFile('x', Buffer.from('x'));
    fs.crashAfter(2);
    fs.writeFile('a', Buffer.from('a'));
    fs.fsync('a');
    assert.throws(() => fs.rename('a', 'b'), PowerCut);
    assert.equal(fs.operations(), 3);
    assert.ok(fs.dead());
    assert.throws(() => fs.read('a'), PowerCut);
    assert.throws(() => fs.syncDir(), PowerCut);
    // The rename never happened: whatever survives has no "b".
    for (const name of outcomes(fs, (d) => d.list().join())) assert.ok(!name.includes('b'));
    const after = fs.crash(createRandom(1).next);
    assert.ok(!after.dead());
    assert.equal(after.operations(), 0);
  });

  test('a crash is deterministic for a seed, and the survivor is all durable', () => {
    const build = () => {
      const fs = createPowerCutFileSystem();
      for (let i = 0; i < 20; i++) {
        fs.writeFile(`f${i % 5}`, Buffer.from(`content ${i}`));
        if (i % 3 === 0) fs.fsync(`f${i % 5}`);
        if (i % 7 === 0) fs.syncDir();
      }
      return fs;
    };
    const snapshot = (fs: FileSystem) => fs.list().sort().map((n) => `${n}=${text(fs, n)}`).join(';');
    for (let seed = 1; seed < 50; seed++) {
      const once = build().crash(createRandom(seed).next);
      assert.equal(snapshot(once), snapshot(build().crash(createRandom(seed).next)));
      // Crashing again at once changes nothing: every survivor is durable.
      assert.equal(snapshot(once.crash(createRandom(seed + 1).next)), snapshot(once));
    }
  });

  test('storage on it: a write that returned survives; one cut short reads as the old or the new document', () => {
    let total = 0;
    const script = (fs: FileSystem) => {
      const storage = createStorage(fs);
      for (let i = 1; i <= 5; i++) storage.write('doc', `version ${i}`);
    };
    const probe = createPowerCutFileSystem();
    script(probe);
    for (let cut = 0; cut <= probe.operations(); cut++) {
      for (let seed = 1; seed <= 20; seed++) {
        const fs = createPowerCutFileSystem();
        fs.crashAfter(cut);
        let done = 0;
        try {
          const storage = createStorage(fs);
          for (let i = 1; i <= 5; i++) {
            storage.write('doc', `version ${i}`);
            done = i;
          }
        } catch (error) {
          if (!(error instanceof PowerCut)) throw error;
        }
        const read = createStorage(fs.crash(createRandom(seed * 1000 + cut).next)).read('doc');
        const allowed = [done === 0 ? null : `version ${done}`, ...(done < 5 ? [`version ${done + 1}`] : [])];
        assert.ok(allowed.includes(read), `cut after ${cut} operations (${done} writes returned), seed ${seed}: read ${read}`);
        total++;
      }
    }
    assert.ok(total > 300);
  });
});
