import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitUntil } from './wait.ts';

/**
 * A real process started by a test, with its output captured for assertions and for failure
 * messages, and kill helpers that never touch anything the test did not start.
 */
export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export type Child = {
  readonly label: string;
  readonly pid: number;
  readonly process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  running(): boolean;
  /** Waits until stderr (from `from` on) matches; returns the match. */
  waitForStderr(pattern: RegExp, opts?: { timeoutMs?: number; from?: number }): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<Exit>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<Exit>;
  /** The last lines of its stderr, for failure messages. */
  tail(lines?: number): string;
};

export type SpawnOptions = { cwd?: string; env?: NodeJS.ProcessEnv; label?: string };

export function spawnChild(command: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  let done = false;
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', () => {
      done = true;
      resolve({ code: null, signal: null });
    });
    // 'close' rather than 'exit': by then all output has been read.
    child.once('close', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  const label = opts.label ?? `${command} ${args.join(' ')}`;
  const pid = child.pid;

  const handle: Child = {
    label,
    pid,
    process: child,
    stdout: () => out,
    stderr: () => err,
    exited,
    running: () => !done,
    async waitForStderr(pattern, { timeoutMs = 60_000, from = 0 } = {}) {
      return waitUntil(`${label} to print ${pattern}`, () => {
        const match = err.slice(from).match(pattern);
        if (match) return match;
        if (done) throw new Error(`${label} exited before printing ${pattern}; stderr:\n${handle.tail()}`);
        return null;
      }, { timeoutMs, intervalMs: 50, context: () => `stderr of ${label}:\n${handle.tail()}` });
    },
    async stop(graceMs = 10_000) {
      if (!done) child.kill('SIGTERM');
      const result = await Promise.race([exited, sleep(graceMs).then(() => null)]);
      if (result) return result;
      return handle.kill();
    },
    async kill() {
      if (!done) child.kill('SIGKILL');
      return exited;
    },
    tail(lines = 30) {
      return (err.split('\n').slice(-lines - 1).join('\n').trimEnd() || '(no stderr)')
        .split('\n')
        .map((l) => `  | ${l}`)
        .join('\n');
    },
  };
  return handle;
}

/** Runs a command to completion and returns its exit status and output. */
export async function run(command: string, args: readonly string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnChild(command, args, opts);
  const timeout = setTimeout(() => void child.kill(), opts.timeoutMs ?? 60_000);
  const exit = await child.exited;
  clearTimeout(timeout);
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

/** Runs a command that must succeed; throws with its stderr otherwise. */
export async function runOk(command: string, args: readonly string[], opts: SpawnOptions = {}): Promise<string> {
  const result = await run(command, args, opts);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

/**
 * Pids of live processes for which `match` holds, given their environment entries and working
 * directory. Used to find workloads the agents started: they run detached from the agent (so they
 * outlive it), and carry the agent's marker in their environment.
 */
export function findProcesses(match: (p: { pid: number; env: string[]; cwd: string | null }) => boolean): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    let env: string[];
    let cwd: string | null = null;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    } catch {
      continue;
    }
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // a zombie or a process gone meanwhile
    }
    if (match({ pid, env, cwd })) found.push(pid);
  }
  return found;
}

/** Workload processes started by the process driver of one of these agents (DRIFTLESS_AGENT=<name>). */
export function workloadPids(agents: readonly string[]): number[] {
  const markers = new Set(agents.map((a) => `DRIFTLESS_AGENT=${a}`));
  return findProcesses(({ env }) => env.some((e) => markers.has(e)));
}

export function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** A device's workload processes and the APP_VERSION each was started with ('gone' if it exited meanwhile). */
export function workloadVersions(device: string): { pids: number[]; versions: string[] } {
  const pids = workloadPids([device]);
  const versions = pids.map((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').find((e) => e.startsWith('APP_VERSION='))?.slice(12) ?? '?';
    } catch {
      return 'gone';
    }
  });
  return { pids, versions };
}
