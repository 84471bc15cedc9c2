import assert from 'node:assert/strict';
import { appendFileSync, closeSync, linkSync, mkdtempSync, openSync, renameSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { emptyIfRead, readOutput } from './output.ts';

// readOutput on real files in a temporary directory: the inode and offset cursor, rotation by rename,
// truncation and the byte budget are all properties of the real file system.

type Cursor = Record<string, unknown> | null;

// Every test gets a directory of its own with the output file's two names in it.
let dir: string;
let file: string;
let rotated: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'driftless-output-'));
  file = join(dir, 'output.log');
  rotated = join(dir, 'output.log.1');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('readOutput', () => {

  /** Reads until a read brings no line, as the telemetry collector does; returns every line and the last cursor. */
  async function drain(cursor: Cursor, maxBytes = 64 * 1024): Promise<{ lines: string[]; cursor: Cursor }> {
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const read = await readOutput(file, rotated, cursor, maxBytes);
      cursor = read.cursor;
      if (read.lines.length === 0) return { lines, cursor };
      lines.push(...read.lines);
    }
    throw new Error('readOutput never ran dry');
  }

  test('a missing file gives no lines, and the caller’s cursor back', async () => {
    assert.deepEqual(await readOutput(file, rotated, null, 1024), { lines: [], cursor: {} });
    assert.deepEqual(await readOutput(file, rotated, { ino: 5, offset: 10 }, 1024), { lines: [], cursor: { ino: 5, offset: 10 } });
  });

  test('reads whole lines only; a partial last line waits for its newline', async () => {
    writeFileSync(file, 'one\ntwo\nthr');
    const first = await readOutput(file, rotated, null, 1024);
    assert.deepEqual(first.lines, ['one', 'two']);
    assert.equal(first.cursor.offset, 8);

    const waiting = await readOutput(file, rotated, first.cursor, 1024);
    assert.deepEqual(waiting.lines, [], 'the partial line is not given yet');
    assert.deepEqual(waiting.cursor, first.cursor);

    appendFileSync(file, 'ee\nfour\n');
    const rest = await readOutput(file, rotated, waiting.cursor, 1024);
    assert.deepEqual(rest.lines, ['three', 'four']);
    assert.equal(rest.cursor.offset, 19);
  });

  test('empty lines are lines too', async () => {
    writeFileSync(file, 'a\n\n\nb\n');
    assert.deepEqual((await readOutput(file, rotated, null, 1024)).lines, ['a', '', '', 'b']);
  });

  test('the cursor resumes exactly where the last read ended, across many appends', async () => {
    let cursor: Cursor = null;
    const seen: string[] = [];
    const written: string[] = [];
    for (let i = 0; i < 50; i++) {
      const batch = Array.from({ length: 1 + (i % 4) }, (_, j) => `line ${i}.${j} ${'é'.repeat(i % 3)}`);
      written.push(...batch);
      appendFileSync(file, `${batch.join('\n')}\n`);
      const read = await drain(cursor);
      seen.push(...read.lines);
      cursor = read.cursor;
    }
    assert.deepEqual(seen, written);
  });

  test('keeps to the byte budget, ending on a line boundary', async () => {
    writeFileSync(file, 'aaaa\nbbbb\ncccc\n'); // 5 bytes a line
    const first = await readOutput(file, rotated, null, 12);
    assert.deepEqual(first.lines, ['aaaa', 'bbbb'], 'the third line does not fit in 12 bytes');
    assert.equal(first.cursor.offset, 10);
    const second = await readOutput(file, rotated, first.cursor, 12);
    assert.deepEqual(second.lines, ['cccc']);
  });

  test('a line longer than the budget is cut at the budget, and the rest follows', async () => {
    writeFileSync(file, `${'x'.repeat(25)}\nshort\n`);
    const { lines } = await drain(null, 10);
    assert.deepEqual(lines, ['xxxxxxxxxx', 'xxxxxxxxxx', 'xxxxx', 'short']);
    for (const l of lines) assert.ok(Buffer.byteLength(l) <= 10);
  });

  test('rotation by rename: the rest of the rotated file comes first, then the new file; no line lost or repeated', async () => {
    writeFileSync(file, 'old-1\nold-2\n');
    const first = await readOutput(file, rotated, null, 1024);
    assert.deepEqual(first.lines, ['old-1', 'old-2']);

    // More output lands in the old file, then the driver rotates it at a restart and the new process writes.
    appendFileSync(file, 'old-3\nold-4\n');
    renameSync(file, rotated);
    writeFileSync(file, 'new-1\nnew-2\n');

    const { lines } = await drain(first.cursor);
    assert.deepEqual(lines, ['old-3', 'old-4', 'new-1', 'new-2']);
  });

  test('rotation under a small budget reads the rotated file in pieces, including its unterminated last line', async () => {
    writeFileSync(file, 'old-1\n');
    const first = await readOutput(file, rotated, null, 1024);
    appendFileSync(file, 'old-2\nold-3\nold-4\nlast words');
    renameSync(file, rotated);
    writeFileSync(file, 'new-1\n');
    // The process died mid-line: its last words are given once the file is finished, not held back forever.
    const { lines } = await drain(first.cursor, 13);
    assert.deepEqual(lines, ['old-2', 'old-3', 'old-4', 'last words', 'new-1']);
  });

  test('a rotation after the old file was read to its end starts the new file at 0', async () => {
    writeFileSync(file, 'old-1\n');
    const first = await readOutput(file, rotated, null, 1024);
    renameSync(file, rotated);
    writeFileSync(file, 'new-1\nnew-2\n');
    const { lines } = await drain(first.cursor);
    assert.deepEqual(lines, ['new-1', 'new-2']);
  });

  test('when the file read was rotated away twice, reading goes on with the current file from its start', async () => {
    writeFileSync(file, 'gen-1\n');
    const first = await readOutput(file, rotated, null, 1024);
    // A second name keeps generation 1's inode in use, so the file system cannot give it to generation 3
    // (that case is the known gap below).
    linkSync(file, join(dir, 'keep'));
    appendFileSync(file, 'gen-1 lost\n');
    renameSync(file, rotated);
    writeFileSync(file, 'gen-2\n');
    renameSync(file, rotated); // replaces the file the cursor points into
    writeFileSync(file, 'gen-3\n');
    const { lines } = await drain(first.cursor);
    assert.deepEqual(lines, ['gen-3']);
  });

  test(
    'rotated away twice with the inode reused by the new file: the new file is still read from its start',
    async () => {
      writeFileSync(file, 'gen-1\n');
      const first = await readOutput(file, rotated, null, 1024);
      renameSync(file, rotated);
      writeFileSync(file, 'gen-2\n');
      renameSync(file, rotated); // frees generation 1's inode
      writeFileSync(file, 'gen-3\n'); // ext4 hands the freed inode out again
      const { lines } = await drain(first.cursor);
      assert.deepEqual(lines, ['gen-3']);
    },
  );

  test('keeps to a line budget as well as the byte budget', async () => {
    writeFileSync(file, 'a\nb\nc\nd\ne\n');
    const first = await readOutput(file, rotated, null, 1024, 2);
    assert.deepEqual(first.lines, ['a', 'b']);
    const second = await readOutput(file, rotated, first.cursor, 1024, 2);
    assert.deepEqual(second.lines, ['c', 'd']);
    const third = await readOutput(file, rotated, second.cursor, 1024, 2);
    assert.deepEqual(third.lines, ['e']);
  });

  test('the line budget holds in a rotated file too, with nothing lost on the way to the new one', async () => {
    writeFileSync(file, '');
    const first = await readOutput(file, rotated, null, 1024);
    writeFileSync(file, 'r1\nr2\nr3\nr4\nr5');
    renameSync(file, rotated);
    writeFileSync(file, 'n1\nn2\nn3\n');
    const seen: string[][] = [];
    let cursor: Cursor = first.cursor;
    for (let i = 0; i < 10; i++) {
      const read = await readOutput(file, rotated, cursor, 1024, 2);
      cursor = read.cursor;
      if (read.lines.length === 0) break;
      seen.push(read.lines);
    }
    for (const lines of seen) assert.ok(lines.length <= 2, `${lines.length} lines in one read`);
    assert.deepEqual(seen.flat(), ['r1', 'r2', 'r3', 'r4', 'r5', 'n1', 'n2', 'n3']);
  });

  test('a file truncated below the cursor restarts at 0', async () => {
    writeFileSync(file, 'one\ntwo\nthree\n');
    const first = await readOutput(file, rotated, null, 1024);
    assert.equal(first.lines.length, 3);
    truncateSync(file, 0);
    appendFileSync(file, 'again\n');
    const { lines } = await drain(first.cursor);
    assert.deepEqual(lines, ['again']);
  });

  test('a foreign or broken cursor is read as "from the start"', async () => {
    writeFileSync(file, 'one\n');
    assert.deepEqual((await readOutput(file, rotated, { index: 3 }, 1024)).lines, ['one']);
    assert.deepEqual((await readOutput(file, rotated, { ino: 1, offset: -4 }, 1024)).lines, ['one']);
  });
});

describe('emptyIfRead: a running process\'s output file stays bounded', () => {

  const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line-${from + i}`);
  const text = (list: string[]) => list.map((l) => `${l}\n`).join('');

  test('read to its end and past the limit, the file is emptied; the process\'s next lines land at its start and are read once', async () => {
    // The process's own descriptor, opened for appending as the driver opens it.
    const fd = openSync(file, 'a');
    try {
      writeSync(fd, text(lines(1, 100)));
      const read: string[] = [];
      let cursor: Cursor = null;
      for (let i = 0; i < 100; i++) {
        const got = await emptyIfRead(file, await readOutput(file, rotated, cursor, 256), 500);
        cursor = got.cursor;
        if (got.lines.length === 0) break;
        read.push(...got.lines);
      }
      assert.deepEqual(read, lines(1, 100));
      assert.equal(statSync(file).size, 0, 'emptied once read');
      writeSync(fd, text(lines(101, 110)));
      assert.equal(statSync(file).size, text(lines(101, 110)).length, 'appended at the start, no hole');
      const next = await emptyIfRead(file, await readOutput(file, rotated, cursor, 4096), 500);
      assert.deepEqual(next.lines, lines(101, 110));
      assert.equal(statSync(file).size, text(lines(101, 110)).length, 'under the limit: kept');
    } finally {
      closeSync(fd);
    }
  });

  test('a file not yet read to its end, or under the limit, is left alone', async () => {
    writeFileSync(file, text(lines(1, 100)));
    const partial = await emptyIfRead(file, await readOutput(file, rotated, null, 256), 500);
    assert.ok(partial.lines.length > 0);
    assert.equal(statSync(file).size, text(lines(1, 100)).length);
    writeFileSync(file, text(lines(1, 10)));
    const whole = await emptyIfRead(file, await readOutput(file, rotated, null, 4096), 500);
    assert.deepEqual(whole.lines, lines(1, 10));
    assert.equal(statSync(file).size, text(lines(1, 10)).length);
  });

  test('a line appended after the read is never cut away: the file is emptied only when its size is what was read', async () => {
    writeFileSync(file, text(lines(1, 100)));
    const read = await readOutput(file, rotated, null, 64 * 1024);
    appendFileSync(file, 'late\n');
    const kept = await emptyIfRead(file, read, 500);
    assert.equal(statSync(file).size, text(lines(1, 100)).length + 5);
    const rest = await emptyIfRead(file, await readOutput(file, rotated, kept.cursor, 64 * 1024), 500);
    assert.deepEqual(rest.lines, ['late']);
    assert.equal(statSync(file).size, 0);
  });

  test('while the cursor is still in the rotated file, the current file is not touched', async () => {
    writeFileSync(file, text(lines(1, 100)));
    const first = await readOutput(file, rotated, null, 256);
    renameSync(file, rotated);
    writeFileSync(file, text(lines(101, 200)));
    const got = await emptyIfRead(file, await readOutput(file, rotated, first.cursor, 64 * 1024), 500);
    assert.ok(got.lines.length > 0);
    assert.equal(statSync(file).size, text(lines(101, 200)).length);
  });
});
