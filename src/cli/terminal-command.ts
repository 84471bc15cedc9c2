import { WebSocket } from 'ws';
import { chunksOf, decodeFrame, encodeFrame, ServerToOperator, toBase64, type ExecResponse, type OperatorToServer } from '../protocol/channel.ts';
import { DriftlessError, isErrorCode, networkFailure } from '../protocol/errors.ts';
import { readCaFile } from '../protocol/tls-trust.ts';
import type { Api } from './api-client.ts';
import type { Connection } from './config.ts';

/**
 * `driftless terminal DEVICE` and `driftless exec DEVICE [--component C] -- CMD [ARG]...`: a
 * shell or a command on a device, through the server and the agent's own channel (so it works
 * while the device's container engine is down). The CLI exits with the remote status.
 */

/** A command's own exit status, for `main` to return (the remote shell's or command's). */
export class CommandExit extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`exit status ${status}`);
    this.status = status;
  }
}

export type TerminalIo = {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  /** Where SIGWINCH and friends arrive (the process; a test passes its own emitter). */
  signals: NodeJS.EventEmitter;
};

const defaultIo = (): TerminalIo => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, signals: process });

/** Opens a shell on the device and relays this terminal to it until the shell exits; returns its status. */
export async function terminalCommand(connection: Connection, device: string, io: TerminalIo = defaultIo()): Promise<number> {
  const size = () => ({ cols: clampSize(io.stdout.columns, 80), rows: clampSize(io.stdout.rows, 24) });
  const { cols, rows } = size();
  const url = `${connection.server.replace(/^http/, 'ws')}/v1/devices/${encodeURIComponent(device)}/terminal?cols=${cols}&rows=${rows}`;
  const ca = connection.ca ? { ca: readCaFile(connection.ca, '--ca') } : {};
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${connection.token}` }, handshakeTimeout: 30_000, maxPayload: 256 * 1024, ...ca });

  return new Promise<number>((resolve, reject) => {
    let status: number | null = null;
    let failure: DriftlessError | null = null;
    let raw = false;
    const send = (frame: OperatorToServer) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(encodeFrame(frame));
    };
    const onInput = (data: Buffer) => {
      for (const chunk of chunksOf(Buffer.from(data))) send({ type: 'input', data: toBase64(chunk) });
    };
    const onResize = () => send({ type: 'resize', ...size() });
    const onHangup = () => socket.close(1000, 'operator left');

    const restore = () => {
      io.stdin.off('data', onInput);
      io.signals.off('SIGWINCH', onResize);
      io.signals.off('SIGTERM', onHangup);
      io.signals.off('SIGHUP', onHangup);
      if (raw && io.stdin.isTTY) io.stdin.setRawMode(false);
      raw = false;
      io.stdin.pause();
    };

    socket.on('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        failure = refusal(response.statusCode ?? 0, body);
        socket.terminate();
      });
    });
    socket.on('error', (error) => {
      failure ??= new DriftlessError('unavailable', `cannot reach the server at ${connection.server}: ${networkFailure(error)}`);
    });
    socket.on('open', () => {
      if (io.stdin.isTTY) {
        io.stdin.setRawMode(true);
        raw = true;
      }
      io.stdin.on('data', onInput);
      io.stdin.resume();
      io.signals.on('SIGWINCH', onResize);
      io.signals.on('SIGTERM', onHangup);
      io.signals.on('SIGHUP', onHangup);
    });
    socket.on('message', (data, isBinary) => {
      let frame: ServerToOperator;
      try {
        frame = decodeFrame(ServerToOperator, data, isBinary);
      } catch (error) {
        failure = new DriftlessError('internal', `the server sent a malformed frame (${(error as Error).message})`);
        socket.close(4000, 'bad frame');
        return;
      }
      if (frame.type === 'output') io.stdout.write(Buffer.from(frame.data, 'base64'));
      else if (frame.type === 'exit') status = frame.exitCode;
      else if (frame.type === 'error') failure = new DriftlessError(isErrorCode(frame.code) ? frame.code : 'unavailable', frame.message);
    });
    socket.on('close', () => {
      restore();
      if (status !== null) resolve(status);
      else reject(failure ?? new DriftlessError('unavailable', `the connection to the server closed before the shell on ${device} exited`));
    });
  });
}

export type ExecOptions = { component?: string; timeoutSeconds?: number };

/** Runs one command on the device; prints its output and returns its exit status. */
export async function execCommand(api: Api, device: string, command: readonly string[], opts: ExecOptions, out: Pick<TerminalIo, 'stdout' | 'stderr'> = defaultIo()): Promise<number> {
  if (command.length === 0) throw new DriftlessError('invalid-input', 'no command: write it after --, e.g. driftless exec DEVICE -- uname -a');
  const body = { command: [...command], ...(opts.component ? { component: opts.component } : {}), ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}) };
  const result = await api.post<ExecResponse>(`/v1/devices/${encodeURIComponent(device)}/exec`, body, { timeoutMs: ((opts.timeoutSeconds ?? 60) + 30) * 1000 });
  out.stdout.write(result.output);
  if (result.truncated) out.stderr.write(`driftless: output truncated; the whole of it is in recording ${result.recording}\n`);
  if (result.timedOut) out.stderr.write(`driftless: the command ran past its ${opts.timeoutSeconds ?? 60}s deadline and was killed\n`);
  return result.exitCode;
}

/** Reads `--timeout` for exec: whole seconds from 1 to 3600. */
export function parseExecTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || value < 1 || value > 3600) throw new DriftlessError('invalid-input', `--timeout: "${text}" must be whole seconds from 1 to 3600`);
  return value;
}

function clampSize(value: number | undefined, fallback: number): number {
  return value && Number.isInteger(value) && value > 0 ? Math.min(value, 999) : fallback;
}

/** The server's refusal of the WebSocket upgrade, as one clear error. */
function refusal(status: number, body: string): DriftlessError {
  try {
    const error = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    if (typeof error?.message === 'string') return new DriftlessError(isErrorCode(error.code) ? error.code : 'internal', error.message);
  } catch {
    // not JSON: said by status below
  }
  return new DriftlessError(status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 404 ? 'not-found' : 'unavailable', `the server refused the terminal (HTTP ${status})`);
}
