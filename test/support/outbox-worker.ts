import { writeSync } from 'node:fs';
import { keysOf, loadIdentity } from '../../src/agent/enroll/identity.ts';
import { createOutbox } from '../../src/agent/outbox/outbox.ts';
import { createTelemetry } from '../../src/agent/outbox/telemetry.ts';
import { createDirFileSystem, createStorage, type FileSystem } from '../../src/agent/storage/storage.ts';
import { createContactGate } from '../../src/agent/sync/backoff.ts';
import { createServerClient } from '../../src/agent/sync/client.ts';
import { createRandom } from '../../src/sim/random.ts';

/**
 * A device's telemetry path in a process of its own, for the outbox crash test: the real outbox
 * on a real data directory, the real upload loop and client against a real server. It appends
 * numbered log lines ("rec <n>"), commits, and prints "acked rec <n>" once a commit has returned,
 * uploading now and then. Failpoints sit before and after every file operation and around the
 * upload; OUTBOX_KILL_AT=<k> makes the k-th failpoint hit SIGKILL the process, mid-step, and
 * OUTBOX_KILL_AT=<name>#<k> the k-th hit of the failpoint of that name ("after fsync#3").
 *
 * Environment: OUTBOX_DIR (an enrolled device's data directory), OUTBOX_SERVER (URL), OUTBOX_RUN
 * (this start's number: lines are numbered run·1000 + i, unique and increasing across starts),
 * OUTBOX_KILL_AT (0: no kill), OUTBOX_STEPS, OUTBOX_DRAIN=1 (upload everything before exiting).
 * Prints "hits <n> <json of hits by failpoint>" when it ends by itself.
 */

const env = (name: string) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const run = Number(env('OUTBOX_RUN'));
const kill = /^(?:(.+)#)?(\d+)$/.exec(process.env.OUTBOX_KILL_AT ?? '0');
if (!kill) throw new Error(`OUTBOX_KILL_AT must be <k> or <failpoint>#<k>, not "${process.env.OUTBOX_KILL_AT}"`);
const [, killName, killCount] = kill;
const steps = Number(process.env.OUTBOX_STEPS ?? 10);
const say = (text: string) => void writeSync(1, text);

let hits = 0;
const hitsOf = new Map<string, number>();
function failpoint(name: string): void {
  hits++;
  const nth = (hitsOf.get(name) ?? 0) + 1;
  hitsOf.set(name, nth);
  if ((killName === undefined ? hits : killName === name ? nth : 0) !== Number(killCount)) return;
  say(`killed ${hits} ${name}\n`);
  process.kill(process.pid, 'SIGKILL');
}

function withFailpoints(fs: FileSystem): FileSystem {
  const around =
    <A extends unknown[]>(op: string, work: (...args: A) => void) =>
    (...args: A) => {
      failpoint(`before ${op}`);
      work(...args);
      failpoint(`after ${op}`);
    };
  return {
    read: fs.read,
    list: fs.list,
    writeFile: around('writeFile', fs.writeFile),
    fsync: around('fsync', fs.fsync),
    rename: around('rename', fs.rename),
    remove: around('remove', fs.remove),
    syncDir: around('syncDir', fs.syncDir),
  };
}

const storage = createStorage(withFailpoints(createDirFileSystem(env('OUTBOX_DIR'))));
const identity = loadIdentity(storage);
const keys = identity && keysOf(identity);
if (!identity || !keys) throw new Error('the data directory holds no enrolled identity');
const client = createServerClient({ serverUrl: env('OUTBOX_SERVER'), device: identity.name, privateKey: () => keys.privateKey, now: Date.now });
const outbox = createOutbox(storage);
const telemetry = createTelemetry({
  outbox,
  async upload(batch) {
    failpoint('before upload');
    const ack = await client.postTelemetry(batch);
    failpoint('after upload, before acknowledge');
    return ack;
  },
  gate: createContactGate({ baseMs: 200, capMs: 1000, jitter: true }, Math.random),
  now: Date.now,
  log: (message) => void writeSync(2, `${message}\n`),
  hostMetrics: null,
});

const random = createRandom(run);
let n = run * 1000;
for (let step = 0; step < steps; step++) {
  const lines = Array.from({ length: 1 + random.int(3) }, () => `rec ${++n}`);
  const at = new Date().toISOString();
  for (const line of lines) outbox.add({ kind: 'log', at, component: 'app', line });
  outbox.commit();
  say(lines.map((line) => `acked ${line}\n`).join(''));
  if (random.next() < 0.4) await telemetry.upload();
}
if (process.env.OUTBOX_DRAIN === '1') {
  await telemetry.upload();
  if (telemetry.pending()) throw new Error(`records still pending after the drain: ${JSON.stringify(outbox.stats())}`);
}
say(`hits ${hits} ${JSON.stringify(Object.fromEntries(hitsOf))}\n`);
