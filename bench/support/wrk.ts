import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LoadResult } from './load.ts';

const run = promisify(execFile);

export async function hasWrk(): Promise<boolean> {
  try {
    await run('wrk', ['--version']);
    return true;
  } catch (error) {
    // wrk prints its version and exits 1; only a missing binary is "absent"
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * Load from wrk (Debian's package), a C load generator, so the generator costs far less than
 * the servers it measures. Each request cycles through the given header sets.
 */
export async function runWrk(opts: { url: string; headers: Record<string, string>[]; seconds: number; connections: number; dir: string }): Promise<LoadResult> {
  const quote = (s: string) => JSON.stringify(s);
  const sets = opts.headers.map((h) => `{${Object.entries(h).map(([k, v]) => `[${quote(k)}]=${quote(v)}`).join(',')}}`).join(',\n');
  const path = new URL(opts.url).pathname;
  const script = join(opts.dir, 'load.lua');
  writeFileSync(
    script,
    `local sets = {\n${sets}\n}
local requests = {}
-- Built in init(), per thread, when wrk knows the Host header to add.
init = function()
  for i, h in ipairs(sets) do requests[i] = wrk.format("GET", ${quote(path)}, h) end
end
local n = 0
request = function()
  n = n + 1
  return requests[(n % #requests) + 1]
end
done = function(summary)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d\\n", summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
`,
  );
  const { stdout } = await run('wrk', ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '-s', script, opts.url], { maxBuffer: 1 << 20 });
  const match = /RESULT (\d+) (\d+) (\d+) (\d+)/.exec(stdout);
  if (!match) throw new Error(`wrk printed no result:\n${stdout}`);
  const [requests, micros, statusErrors, socketErrors] = match.slice(1).map(Number) as [number, number, number, number];
  const seconds = micros / 1e6;
  const notModified = requests - statusErrors;
  return { requests, notModified, errors: statusErrors + socketErrors, seconds, perSecond: notModified / seconds };
}
