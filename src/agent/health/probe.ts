import * as http from 'node:http';
import * as net from 'node:net';
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { HealthCheck } from '../../protocol/resources.ts';
import type { ProbeResult } from './health.ts';

/**
 * Decides whether a freshly started instance works, by the component's health check. The detail
 * of every result is written for the operator who reads it in a drift report, so it names what
 * was tried and what answered.
 */

export type ProbeTarget = {
  /** Where the agent reaches a declared port (for containers, the published host port). */
  address(port: number): { host: string; port: number };
  /** Whether the instance still runs; a probe fails at once when it has exited. */
  isRunning(): Promise<{ running: boolean; exitCode: number | null }>;
  /** Runs a command for a `command` health check (inside the container for containers). */
  exec(command: string[], signal: AbortSignal): Promise<{ exitCode: number; output: string }>;
};

export type WaitForHealthOptions = {
  signal: AbortSignal;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
};

const defaultTimeoutSeconds = 60;
const defaultIntervalSeconds = 1;
/** With no check at all, an instance that stays up this long counts as healthy. */
const defaultRunningSeconds = 3;
/** One attempt never waits longer than this, so a hung endpoint still leaves room for retries. */
const maxAttemptMs = 10_000;

type Probe =
  | { kind: 'http'; port: number; path: string; host: string | undefined; expectStatus: number | undefined }
  | { kind: 'tcp'; port: number; host: string | undefined }
  | { kind: 'command'; command: string[] }
  | { kind: 'running'; seconds: number };

/** The one probe a check asks for; validation refuses several, so the first in a fixed order wins. */
function probeOf(check: HealthCheck | undefined): Probe {
  if (check?.http) {
    const { port, path, host, expectStatus } = check.http;
    return { kind: 'http', port, path: path ?? '/', host, expectStatus };
  }
  if (check?.tcp) return { kind: 'tcp', port: check.tcp.port, host: check.tcp.host };
  if (check?.command) return { kind: 'command', command: check.command };
  return { kind: 'running', seconds: check?.running?.seconds ?? defaultRunningSeconds };
}

async function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleepFor(ms, undefined, { signal });
  } catch (error) {
    // Callers see the reason they aborted with, as from every other await here.
    signal.throwIfAborted();
    throw error;
  }
}

/** "0.4s", "12s": precise where it matters, short where it does not. */
export function formatSeconds(ms: number): string {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 10) return `${Number(seconds.toFixed(1))}s`;
  return `${Math.round(seconds)}s`;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function exitedDetail(exitCode: number | null, elapsedMs: number): string {
  return exitCode === null
    ? `stopped running after ${formatSeconds(elapsedMs)}`
    : `exited with code ${exitCode} after ${formatSeconds(elapsedMs)}`;
}

/**
 * Waits until the instance passes its health check, fails it for `timeoutSeconds`, or exits.
 * Rejects with the signal's reason when aborted. A `running` check (and no check) is a fixed wait
 * of its `seconds`, which the timeout does not cut short.
 */
export async function waitForHealth(
  check: HealthCheck | undefined,
  target: ProbeTarget,
  opts: WaitForHealthOptions,
): Promise<ProbeResult> {
  const { signal } = opts;
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const probe = probeOf(check);
  const timeoutMs = (check?.timeoutSeconds ?? defaultTimeoutSeconds) * 1000;
  const intervalMs = (check?.intervalSeconds ?? defaultIntervalSeconds) * 1000;
  const started = now();
  signal.throwIfAborted();

  if (probe.kind === 'running') {
    const requiredMs = probe.seconds * 1000;
    for (;;) {
      const state = await target.isRunning();
      signal.throwIfAborted();
      const elapsed = now() - started;
      if (!state.running) return { ok: false, detail: exitedDetail(state.exitCode, elapsed) };
      if (elapsed >= requiredMs) return { ok: true, detail: `running for ${formatSeconds(elapsed)}` };
      await sleep(Math.min(intervalMs, requiredMs - elapsed), signal);
    }
  }

  for (;;) {
    const state = await target.isRunning();
    signal.throwIfAborted();
    if (!state.running) return { ok: false, detail: exitedDetail(state.exitCode, now() - started) };
    const remaining = started + timeoutMs - now();
    const outcome = await attempt(probe, target, Math.max(100, Math.min(maxAttemptMs, remaining)), signal);
    if (outcome.ok) return outcome;
    const elapsed = now() - started;
    if (elapsed >= timeoutMs) return { ok: false, detail: `${outcome.detail} after ${formatSeconds(elapsed)}` };
    await sleep(Math.min(intervalMs, timeoutMs - elapsed), signal);
  }
}

/**
 * One check of a committed instance, for periodic liveness: no retries, the attempt bounded by the
 * check's timeout (at most 10s). A `running` check (or none) only asks whether it still runs.
 */
export async function probeOnce(check: HealthCheck | undefined, target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult> {
  signal.throwIfAborted();
  const probe = probeOf(check);
  const state = await target.isRunning();
  signal.throwIfAborted();
  if (!state.running) {
    return { ok: false, detail: state.exitCode === null ? 'not running' : `exited with code ${state.exitCode}` };
  }
  if (probe.kind === 'running') return { ok: true, detail: 'running' };
  const timeoutMs = Math.min(maxAttemptMs, (check?.timeoutSeconds ?? defaultTimeoutSeconds) * 1000);
  return attempt(probe, target, timeoutMs, signal);
}

/** One try of an http, tcp or command probe; never throws except when `signal` aborts. */
async function attempt(
  probe: Exclude<Probe, { kind: 'running' }>,
  target: ProbeTarget,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const attemptSignal = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  let result: ProbeResult;
  try {
    if (probe.kind === 'http') result = await httpAttempt(probe, target, timeoutMs, attemptSignal);
    else if (probe.kind === 'tcp') result = await tcpAttempt(probe, target, timeoutMs, attemptSignal);
    else result = await commandAttempt(probe, target, timeoutMs, attemptSignal);
  } catch (error) {
    signal.throwIfAborted();
    result = { ok: false, detail: `probe failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  signal.throwIfAborted();
  return result;
}

function networkError(error: unknown, address: string, timeoutMs: number): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused on ${address}`;
    case 'ECONNRESET':
      return `connection reset by ${address}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${address} is unreachable`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host of ${address} not found`;
    case 'ABORT_ERR':
    case 'ETIMEDOUT':
      return `no answer from ${address} within ${formatSeconds(timeoutMs)}`;
    default:
      return error instanceof Error ? `${error.message} (${address})` : `${String(error)} (${address})`;
  }
}

function httpAttempt(
  probe: Extract<Probe, { kind: 'http' }>,
  target: ProbeTarget,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const reached = target.address(probe.port);
  const host = probe.host ?? reached.host;
  const address = hostPort(host, reached.port);
  const url = `http://${address}${probe.path}`;
  return new Promise((resolve) => {
    const request = http.request(
      { host, port: reached.port, path: probe.path, method: 'GET', agent: false, signal, headers: { 'user-agent': 'driftless-agent' } },
      (response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        request.destroy();
        const ok = probe.expectStatus === undefined ? status >= 200 && status < 400 : status === probe.expectStatus;
        if (ok) resolve({ ok: true, detail: `GET ${probe.path} answered ${status}` });
        else {
          const expected = probe.expectStatus === undefined ? '' : `, expected ${probe.expectStatus}`;
          resolve({ ok: false, detail: `GET ${url} answered ${status}${expected}` });
        }
      },
    );
    request.once('error', (error) => resolve({ ok: false, detail: `GET ${url}: ${networkError(error, address, timeoutMs)}` }));
    request.end();
  });
}

function tcpAttempt(
  probe: Extract<Probe, { kind: 'tcp' }>,
  target: ProbeTarget,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const reached = target.address(probe.port);
  const host = probe.host ?? reached.host;
  const address = hostPort(host, reached.port);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: reached.port, signal });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true, detail: `connected to ${address}` });
    });
    socket.once('error', (error) => {
      socket.destroy();
      resolve({ ok: false, detail: networkError(error, address, timeoutMs) });
    });
  });
}

function lastLine(output: string): string {
  const line = output.split('\n').map((l) => l.trim()).filter(Boolean).at(-1) ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

async function commandAttempt(
  probe: Extract<Probe, { kind: 'command' }>,
  target: ProbeTarget,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const shown = `command "${probe.command.join(' ')}"`;
  try {
    const { exitCode, output } = await target.exec(probe.command, signal);
    if (exitCode === 0) return { ok: true, detail: `${shown} exited 0` };
    const line = lastLine(output);
    return { ok: false, detail: `${shown} exited ${exitCode}${line ? `: ${line}` : ''}` };
  } catch (error) {
    if (signal.aborted) return { ok: false, detail: `${shown} did not finish within ${formatSeconds(timeoutMs)}` };
    return { ok: false, detail: `${shown} could not run: ${error instanceof Error ? error.message : String(error)}` };
  }
}
