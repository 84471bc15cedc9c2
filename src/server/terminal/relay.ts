import type { RawData, WebSocket } from 'ws';
import {
  chunksOf,
  decodeFrame,
  encodeFrame,
  OperatorToServer,
  toBase64,
  type ExecRequest,
  type ExecResponse,
  type ServerToOperator,
  type SessionErrorCode,
} from '../../protocol/channel.ts';
import { DriftlessError, isErrorCode, type ErrorCode } from '../../protocol/errors.ts';
import type { DeviceChannels, DeviceSession } from './device-channels.ts';
import type { Recordings } from './recordings.ts';

/**
 * Joins an operator to a session on a device's channel, and records it. The terminal relays one
 * operator WebSocket; exec collects the command's output for one HTTP answer. Both are reported
 * to the audit trail with the recording's id.
 */

/** The audit trail as this module uses it (server/audit/'s AuditLog); absent in tests that do not look at it. */
export type AuditSink = {
  record(event: { tenant: string; actor: string; action: string; target?: string | null; status?: number; error?: string | null; detail?: Record<string, unknown> }): unknown;
};

export type SessionContext = {
  channels: DeviceChannels;
  recordings: Recordings;
  audit?: AuditSink | undefined;
  tenant: string;
  device: string;
  actor: string;
  log?: (message: string) => void;
};

/** The most exec output one HTTP answer carries; the recording keeps all of it. */
export const MAX_EXEC_OUTPUT_BYTES = 1024 * 1024;
/** How much longer than the command's own deadline the server waits for the device's answer. */
const EXEC_GRACE_MS = 15_000;

const ERROR_OF: Record<SessionErrorCode | 'disconnected', ErrorCode> = {
  refused: 'forbidden',
  'not-found': 'not-found',
  unavailable: 'unavailable',
  busy: 'busy',
  failed: 'unavailable',
  disconnected: 'unavailable',
};

/** The HTTP error for a session the device refused or could not run. */
export function sessionError(code: SessionErrorCode | 'disconnected', message: string): DriftlessError {
  return new DriftlessError(ERROR_OF[code], message);
}

/** One audit entry for a session; a failure carries its HTTP status and error code, as API calls do. */
function record(ctx: SessionContext, action: string, detail: Record<string, unknown>, failure?: DriftlessError): void {
  const outcome = failure ? { status: failure.status, error: failure.code } : {};
  try {
    void Promise.resolve(ctx.audit?.record({ tenant: ctx.tenant, actor: ctx.actor, action, target: `device:${ctx.device}`, ...outcome, detail })).catch((error: unknown) =>
      ctx.log?.(`audit ${action}: ${(error as Error).message}`),
    );
  } catch (error) {
    ctx.log?.(`audit ${action}: ${(error as Error).message}`);
  }
}

/** Relays an operator's terminal socket to a new shell on the device until either side ends it. */
export function relayTerminal(ctx: SessionContext, operator: WebSocket, size: { cols: number; rows: number }): void {
  const recording = ctx.recordings.start({ kind: 'terminal', tenant: ctx.tenant, device: ctx.device, actor: ctx.actor, cols: size.cols, rows: size.rows });
  record(ctx, 'terminal.open', { recording: recording.id, cols: size.cols, rows: size.rows });
  const send = (frame: ServerToOperator) => {
    if (operator.readyState === operator.OPEN) operator.send(encodeFrame(frame));
  };
  let ended = false;

  const finish = (outcome: { exitCode: number } | { code: string; message: string }, notify = true) => {
    if (ended) return;
    ended = true;
    if (notify) send('exitCode' in outcome ? { type: 'exit', exitCode: outcome.exitCode } : { type: 'error', code: outcome.code, message: outcome.message });
    if (operator.readyState === operator.OPEN) operator.close(1000, 'exitCode' in outcome ? 'session ended' : outcome.code);
    void recording
      .close('exitCode' in outcome ? outcome.exitCode : null)
      .catch((error: unknown) => ctx.log?.(`recording ${recording.id}: ${(error as Error).message}`))
      .finally(() =>
        record(
          ctx,
          'terminal.close',
          { recording: recording.id, ...('exitCode' in outcome ? { exitCode: outcome.exitCode } : { reason: outcome.message.slice(0, 200) }) },
          'exitCode' in outcome || outcome.code === 'closed' ? undefined : new DriftlessError(isErrorCode(outcome.code) ? outcome.code : 'unavailable', outcome.message),
        ),
      );
  };

  let session: DeviceSession;
  try {
    session = ctx.channels.open(
      ctx.device,
      { type: 'open-terminal', cols: size.cols, rows: size.rows },
      {
        opened: () => send({ type: 'opened', recording: recording.id }),
        output: (data) => {
          recording.output(data);
          for (const chunk of chunksOf(data)) send({ type: 'output', data: toBase64(chunk) });
        },
        exit: (exitCode) => finish({ exitCode }),
        error: (code, message) => finish({ code: sessionError(code, message).code, message }),
      },
    );
  } catch (error) {
    finish({ code: 'unavailable', message: (error as Error).message });
    return;
  }

  operator.on('message', (raw: RawData, isBinary: boolean) => {
    if (ended) return;
    try {
      const frame = decodeFrame(OperatorToServer, raw, isBinary);
      if (frame.type === 'input') session.input(Buffer.from(frame.data, 'base64'));
      else {
        recording.resize(frame.cols, frame.rows);
        session.resize(frame.cols, frame.rows);
      }
    } catch (error) {
      session.close();
      finish({ code: 'invalid-input', message: (error as Error).message });
    }
  });
  operator.on('close', () => {
    session.close();
    finish({ code: 'closed', message: 'operator disconnected' }, false);
  });
  operator.on('error', (error) => ctx.log?.(`terminal on ${ctx.device}: ${error.message}`));
}

/** Runs one command on the device (host or component) and answers with its output and exit code. */
export function runExec(ctx: SessionContext, request: ExecRequest, signal: AbortSignal, defaultTimeoutSeconds = 60): Promise<ExecResponse> {
  const timeoutSeconds = request.timeoutSeconds ?? defaultTimeoutSeconds;
  const recording = ctx.recordings.start({
    kind: 'exec',
    tenant: ctx.tenant,
    device: ctx.device,
    actor: ctx.actor,
    cols: 80,
    rows: 24,
    command: request.command,
    ...(request.component ? { component: request.component } : {}),
  });
  // The audit entry names the program, not its arguments (they may hold a secret); the recording has the whole command.
  const what = { recording: recording.id, program: request.command[0], ...(request.component ? { component: request.component } : {}) };
  const chunks: Buffer[] = [];
  let kept = 0;
  let truncated = false;

  return new Promise<ExecResponse>((resolve, reject) => {
    let settled = false;
    let session: DeviceSession | null = null;
    const deadline = setTimeout(() => {
      session?.close();
      fail(new DriftlessError('unavailable', `device ${ctx.device} did not answer within ${timeoutSeconds}s of the command's deadline`));
    }, timeoutSeconds * 1000 + EXEC_GRACE_MS);
    const onAbort = () => {
      session?.close();
      fail(new DriftlessError('unavailable', 'the caller went away'));
    };
    signal.addEventListener('abort', onAbort, { once: true });

    const settle = () => {
      settled = true;
      clearTimeout(deadline);
      signal.removeEventListener('abort', onAbort);
    };
    function fail(error: DriftlessError) {
      if (settled) return;
      settle();
      void recording.close(null).catch(() => undefined);
      record(ctx, 'exec', { ...what, reason: error.message.slice(0, 200) }, error);
      reject(error);
    }
    const succeed = (exitCode: number, timedOut: boolean) => {
      if (settled) return;
      settle();
      record(ctx, 'exec', { ...what, exitCode, timedOut });
      recording
        .close(exitCode)
        .catch((error: unknown) => ctx.log?.(`recording ${recording.id}: ${(error as Error).message}`))
        .finally(() => resolve({ exitCode, output: Buffer.concat(chunks).toString('utf8'), truncated, timedOut, recording: recording.id }));
    };

    try {
      session = ctx.channels.open(
        ctx.device,
        { type: 'open-exec', command: request.command, timeoutSeconds, ...(request.component ? { component: request.component } : {}) },
        {
          opened: () => undefined,
          output: (data) => {
            recording.output(data);
            const room = MAX_EXEC_OUTPUT_BYTES - kept;
            if (data.length > room) truncated = true;
            if (room > 0) {
              const part = data.subarray(0, room);
              chunks.push(part);
              kept += part.length;
            }
          },
          exit: succeed,
          error: (code, message) => fail(sessionError(code, message)),
        },
      );
    } catch (error) {
      fail(new DriftlessError('unavailable', (error as Error).message));
    }
  });
}
