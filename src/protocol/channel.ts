import { Type, type Static } from '@sinclair/typebox';
import { DriftlessError } from './errors.ts';
import { Name } from './resources.ts';
import { parseAs } from './validate.ts';

/**
 * The frames of the two WebSockets behind remote terminal and exec.
 *
 * The device channel (`GET /v1/device/channel`) is the agent's one WebSocket to the server. It
 * carries hints ("desired state changed, pull now") and terminal and exec sessions multiplexed by a
 * session id. It never carries desired state itself: a lost channel loses nothing.
 *
 * The operator's terminal socket (`GET /v1/devices/:name/terminal`) carries one session between
 * the CLI (or the dashboard) and the server, which relays it to the device's channel and records it.
 *
 * Every frame is one JSON text message; terminal bytes travel base64-encoded. Each end validates
 * every frame it receives against these schemas and drops the connection on one that does not fit.
 */

const closed = { additionalProperties: false } as const;
/** One chunk of terminal bytes: 48 KiB of raw bytes at most, base64. */
const MAX_CHUNK_BYTES = 48 * 1024;
const Data = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: Math.ceil(MAX_CHUNK_BYTES / 3) * 4, description: 'base64 bytes' });
const SessionId = Type.String({ pattern: '^[A-Za-z0-9-]{8,64}$', description: 'a session id (letters, digits, "-")' });
const Cols = Type.Integer({ minimum: 1, maximum: 1000 });
const Rows = Type.Integer({ minimum: 1, maximum: 1000 });
const ExitCode = Type.Integer({ minimum: -1, maximum: 255 });
const Message = Type.String({ maxLength: 2000 });

/** Why a session could not start or ended early, as a code the server maps to an HTTP answer. */
export const SessionErrorCode = Type.Union([
  Type.Literal('refused'),
  Type.Literal('not-found'),
  Type.Literal('unavailable'),
  Type.Literal('busy'),
  Type.Literal('failed'),
]);
export type SessionErrorCode = Static<typeof SessionErrorCode>;

export const MAX_EXEC_TIMEOUT_SECONDS = 3600;
export const MAX_COMMAND_ARGS = 256;
export const Command = Type.Array(Type.String({ minLength: 0, maxLength: 8192 }), { minItems: 1, maxItems: MAX_COMMAND_ARGS });

// ---- server → agent ----

export const ChannelOpenTerminal = Type.Object(
  { type: Type.Literal('open-terminal'), session: SessionId, cols: Cols, rows: Rows },
  closed,
);
export const ChannelOpenExec = Type.Object(
  {
    type: Type.Literal('open-exec'),
    session: SessionId,
    command: Command,
    /** Run inside this component's container; on the host when absent. */
    component: Type.Optional(Name),
    timeoutSeconds: Type.Integer({ minimum: 1, maximum: MAX_EXEC_TIMEOUT_SECONDS }),
  },
  closed,
);
export const ChannelInput = Type.Object({ type: Type.Literal('input'), session: SessionId, data: Data }, closed);
export const ChannelResize = Type.Object({ type: Type.Literal('resize'), session: SessionId, cols: Cols, rows: Rows }, closed);
/** The operator went away: end the session (hang up the shell, kill the command). */
export const ChannelClose = Type.Object({ type: Type.Literal('close'), session: SessionId }, closed);
/** Desired state changed: pull now instead of at the next poll. */
export const ChannelHint = Type.Object({ type: Type.Literal('hint'), what: Type.Literal('desired-state') }, closed);

export const ServerToAgent = Type.Union([ChannelOpenTerminal, ChannelOpenExec, ChannelInput, ChannelResize, ChannelClose, ChannelHint]);
export type ServerToAgent = Static<typeof ServerToAgent>;

// ---- agent → server ----

/** The agent's first frame: what it is and whether it accepts remote shells at all. */
export const ChannelHello = Type.Object(
  { type: Type.Literal('hello'), agentVersion: Type.String({ maxLength: 64 }), remoteShell: Type.Boolean() },
  closed,
);
export type ChannelHello = Static<typeof ChannelHello>;
export const ChannelOpened = Type.Object({ type: Type.Literal('opened'), session: SessionId }, closed);
export const ChannelOutput = Type.Object({ type: Type.Literal('output'), session: SessionId, data: Data }, closed);
export const ChannelExit = Type.Object(
  {
    type: Type.Literal('exit'),
    session: SessionId,
    /** The shell's or command's exit status; a process killed by a signal reports 128 + its number. */
    exitCode: ExitCode,
    /** The command ran past its deadline and was killed. */
    timedOut: Type.Optional(Type.Boolean()),
  },
  closed,
);
export const ChannelError = Type.Object(
  { type: Type.Literal('error'), session: SessionId, code: SessionErrorCode, message: Message },
  closed,
);

export const AgentToServer = Type.Union([ChannelHello, ChannelOpened, ChannelOutput, ChannelExit, ChannelError]);
export type AgentToServer = Static<typeof AgentToServer>;

// ---- operator ⇄ server (one session per socket) ----

export const TerminalInput = Type.Object({ type: Type.Literal('input'), data: Data }, closed);
export const TerminalResize = Type.Object({ type: Type.Literal('resize'), cols: Cols, rows: Rows }, closed);
export const OperatorToServer = Type.Union([TerminalInput, TerminalResize]);
export type OperatorToServer = Static<typeof OperatorToServer>;

export const TerminalOpened = Type.Object({ type: Type.Literal('opened'), recording: Type.String({ maxLength: 64 }) }, closed);
export const TerminalOutput = Type.Object({ type: Type.Literal('output'), data: Data }, closed);
export const TerminalExit = Type.Object({ type: Type.Literal('exit'), exitCode: ExitCode }, closed);
export const TerminalError = Type.Object({ type: Type.Literal('error'), code: Type.String({ maxLength: 64 }), message: Message }, closed);
export const ServerToOperator = Type.Union([TerminalOpened, TerminalOutput, TerminalExit, TerminalError]);
export type ServerToOperator = Static<typeof ServerToOperator>;

// ---- exec over HTTP ----

export const ExecRequest = Type.Object(
  {
    command: Command,
    component: Type.Optional(Name),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_EXEC_TIMEOUT_SECONDS })),
  },
  closed,
);
export type ExecRequest = Static<typeof ExecRequest>;

export const ExecResponse = Type.Object({
  exitCode: ExitCode,
  /** stdout and stderr interleaved as produced, decoded as UTF-8. */
  output: Type.String(),
  /** The output was longer than the server keeps; the recording has it all. */
  truncated: Type.Boolean(),
  timedOut: Type.Boolean(),
  recording: Type.String(),
});
export type ExecResponse = Static<typeof ExecResponse>;

export const Recording = Type.Object({
  id: Type.String(),
  kind: Type.Union([Type.Literal('terminal'), Type.Literal('exec')]),
  tenant: Type.String(),
  device: Type.String(),
  actor: Type.String(),
  startedAt: Type.String(),
  command: Type.Optional(Type.Array(Type.String())),
  component: Type.Optional(Type.String()),
  bytes: Type.Integer(),
});
export type Recording = Static<typeof Recording>;

// ---- codecs ----

/** Frames longer than this are refused before parsing (a chunk of data plus its envelope). */
export const MAX_FRAME_CHARS = 128 * 1024;

/** Splits bytes into chunks that each fit one data frame. */
export function chunksOf(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += MAX_CHUNK_BYTES) chunks.push(bytes.subarray(at, at + MAX_CHUNK_BYTES));
  return chunks;
}

export function encodeFrame(frame: ServerToAgent | AgentToServer | OperatorToServer | ServerToOperator): string {
  return JSON.stringify(frame);
}

/**
 * One received frame, parsed and validated; throws `invalid-input` naming the field otherwise.
 * A binary frame, an over-long one and one that is not JSON are refused too.
 */
export function decodeFrame<S extends typeof ServerToAgent | typeof AgentToServer | typeof OperatorToServer | typeof ServerToOperator>(
  schema: S,
  raw: unknown,
  isBinary = false,
): Static<S> {
  if (isBinary) throw new DriftlessError('invalid-input', 'frame: binary frames are not part of the protocol; send JSON text');
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : Array.isArray(raw) ? Buffer.concat(raw as Buffer[]).toString('utf8') : typeof raw === 'string' ? raw : null;
  if (text === null) throw new DriftlessError('invalid-input', 'frame: not text');
  if (text.length > MAX_FRAME_CHARS) throw new DriftlessError('invalid-input', `frame: longer than ${MAX_FRAME_CHARS} characters`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DriftlessError('invalid-input', 'frame: not JSON');
  }
  return parseAs(schema, value, 'frame');
}

export const toBase64 = (bytes: Buffer | string): string => Buffer.from(bytes).toString('base64');
export const fromBase64 = (data: string): Buffer => Buffer.from(data, 'base64');
