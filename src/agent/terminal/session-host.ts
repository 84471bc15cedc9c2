import { chunksOf, fromBase64, toBase64, type AgentToServer, type ServerToAgent, type SessionErrorCode } from '../../protocol/channel.ts';
import type { HostRun } from './host-exec.ts';
import type { SpawnTerminal, Terminal } from './pty-terminal.ts';

/**
 * The agent's side of remote sessions: shells on a PTY and commands on the host or in a
 * component's container, each under a session id the server chose. It answers every open with
 * `opened` or `error`, streams output, and ends with `exit` (or `error`).
 */

/** Why a session was refused or failed, as the operator will read it. */
export class SessionRefusal extends Error {
  readonly code: SessionErrorCode;
  constructor(code: SessionErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export type SessionHostDeps = {
  send(frame: AgentToServer): void;
  /** Read at every open: a local file can switch remote shells off without a restart. */
  remoteShell(): boolean;
  spawnTerminal: SpawnTerminal;
  runOnHost(command: readonly string[], opts: { timeoutMs: number; signal: AbortSignal; onOutput: (data: Buffer) => void }): Promise<HostRun>;
  /** Runs a command in a component's container (through its runtime driver); throws SessionRefusal when it cannot. */
  execInComponent(component: string, command: string[], signal: AbortSignal): Promise<{ exitCode: number; output: string }>;
  /** Output waiting to reach the server; a shell is paused above the high mark until it drains. */
  buffered?(): number;
  maxSessions?: number;
  log?: (message: string) => void;
};

export type SessionHost = {
  handle(frame: Exclude<ServerToAgent, { type: 'hint' }>): void;
  /** Ends every session (the channel is gone: nobody reads their output any more). */
  closeAll(): void;
  count(): number;
};

export const REFUSAL_MESSAGE = 'this device refuses remote shells and exec (local configuration: the agent runs with --no-remote-shell or has a no-remote-shell file in its data directory)';
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

/** A shell still starting keeps what was typed and the last size asked for, and gets them once it runs. */
type Live = { kind: 'terminal'; terminal: Terminal | null; closed: boolean; early: Buffer[]; size: { cols: number; rows: number } | null } | { kind: 'exec'; abort: AbortController };

export function createSessionHost(deps: SessionHostDeps): SessionHost {
  const sessions = new Map<string, Live>();
  const maxSessions = deps.maxSessions ?? 8;
  const log = deps.log ?? (() => undefined);

  const output = (session: string, data: Buffer) => {
    for (const chunk of chunksOf(data)) deps.send({ type: 'output', session, data: toBase64(chunk) });
  };
  const fail = (session: string, code: SessionErrorCode, message: string) => {
    sessions.delete(session);
    deps.send({ type: 'error', session, code, message });
  };

  async function openTerminal(session: string, cols: number, rows: number): Promise<void> {
    const live: Live = { kind: 'terminal', terminal: null, closed: false, early: [], size: null };
    sessions.set(session, live);
    let terminal: Terminal;
    try {
      terminal = await deps.spawnTerminal({ cols, rows });
    } catch (error) {
      if (!live.closed) fail(session, 'failed', `cannot start a shell: ${(error as Error).message}`);
      return;
    }
    // The operator left while the shell was starting.
    if (live.closed) return terminal.kill();
    live.terminal = terminal;
    deps.send({ type: 'opened', session });
    let paused = false;
    terminal.onData((data) => {
      if (live.closed) return;
      output(session, data);
      if (!paused && deps.buffered && deps.buffered() > HIGH_WATER) {
        paused = true;
        terminal.pause();
        const wait = setInterval(() => {
          if (live.closed || deps.buffered!() < LOW_WATER) {
            clearInterval(wait);
            paused = false;
            terminal.resume();
          }
        }, 20);
      }
    });
    terminal.onExit((exitCode) => {
      if (live.closed) return;
      live.closed = true;
      sessions.delete(session);
      deps.send({ type: 'exit', session, exitCode });
    });
    if (live.size) terminal.resize(live.size.cols, live.size.rows);
    for (const data of live.early.splice(0)) terminal.write(data);
  }

  async function runExec(session: string, frame: Extract<ServerToAgent, { type: 'open-exec' }>): Promise<void> {
    const abort = new AbortController();
    sessions.set(session, { kind: 'exec', abort });
    deps.send({ type: 'opened', session });
    const timeoutMs = frame.timeoutSeconds * 1000;
    try {
      if (frame.component === undefined) {
        const run = await deps.runOnHost(frame.command, { timeoutMs, signal: abort.signal, onOutput: (data) => !abort.signal.aborted && output(session, data) });
        if (!abort.signal.aborted) deps.send({ type: 'exit', session, exitCode: run.exitCode, ...(run.timedOut ? { timedOut: true } : {}) });
        return;
      }
      const deadline = setTimeout(() => abort.abort(new SessionRefusal('failed', 'timed out')), timeoutMs);
      try {
        const result = await deps.execInComponent(frame.component, frame.command, abort.signal);
        if (result.output) output(session, Buffer.from(result.output, 'utf8'));
        deps.send({ type: 'exit', session, exitCode: result.exitCode });
      } catch (error) {
        if (abort.signal.reason instanceof SessionRefusal && abort.signal.reason.message === 'timed out') {
          deps.send({ type: 'exit', session, exitCode: 124, timedOut: true });
        } else if (!abort.signal.aborted) {
          throw error;
        }
      } finally {
        clearTimeout(deadline);
      }
    } catch (error) {
      if (error instanceof SessionRefusal) deps.send({ type: 'error', session, code: error.code, message: error.message });
      else deps.send({ type: 'error', session, code: 'failed', message: (error as Error).message });
    } finally {
      sessions.delete(session);
    }
  }

  function end(session: string): void {
    const live = sessions.get(session);
    if (!live) return;
    sessions.delete(session);
    if (live.kind === 'exec') live.abort.abort();
    else {
      live.closed = true;
      live.terminal?.kill();
    }
  }

  return {
    handle(frame) {
      switch (frame.type) {
        case 'open-terminal':
        case 'open-exec': {
          if (sessions.has(frame.session)) return fail(frame.session, 'failed', 'session id already in use');
          if (!deps.remoteShell()) return fail(frame.session, 'refused', REFUSAL_MESSAGE);
          if (sessions.size >= maxSessions) return fail(frame.session, 'busy', `this device already runs ${sessions.size} remote sessions, its limit`);
          log(`remote ${frame.type === 'open-terminal' ? 'terminal' : `exec ${frame.component ? `in ${frame.component}` : 'on the host'}`} session ${frame.session}`);
          if (frame.type === 'open-terminal') void openTerminal(frame.session, frame.cols, frame.rows);
          else void runExec(frame.session, frame);
          return;
        }
        case 'input': {
          const live = sessions.get(frame.session);
          if (live?.kind !== 'terminal') return;
          if (live.terminal) live.terminal.write(fromBase64(frame.data));
          else if (live.early.length < 256) live.early.push(fromBase64(frame.data));
          return;
        }
        case 'resize': {
          const live = sessions.get(frame.session);
          if (live?.kind !== 'terminal') return;
          if (live.terminal) live.terminal.resize(frame.cols, frame.rows);
          else live.size = { cols: frame.cols, rows: frame.rows };
          return;
        }
        case 'close':
          return end(frame.session);
      }
    },
    closeAll() {
      for (const session of [...sessions.keys()]) end(session);
    },
    count: () => sessions.size,
  };
}
