import type { DesiredComponent } from '../../protocol/messages.ts';

/**
 * A runtime driver runs components on the device. The agent owns only what it created: every
 * instance carries the agent's id and the component's key (container labels, or the process
 * driver's own inventory), and `list()` returns only those.
 */
export type RuntimeKind = 'container' | 'process';

/** What the agent asks a driver to run. `key` is unique per device: `<deployment>.<component>`. */
export type InstanceSpec = {
  key: string;
  specHash: string;
  component: DesiredComponent;
};

/** What a driver observes of one instance it created. */
export type Instance = {
  key: string;
  specHash: string;
  deployment: string;
  component: string;
  version: string;
  running: boolean;
  /** Exit code of the last run when stopped, if the runtime knows it. */
  exitCode: number | null;
  startedAt: string | null;
  /** Published ports as the runtime reports them: container (or declared) port -> host port. */
  ports: Record<number, number>;
  /** How often the runtime restarted it after a crash, when the runtime counts. */
  restarts?: number;
};

/** Output lines read from an instance, and where the next read starts (JSON, kept durably by the caller). */
export type LogRead = { lines: string[]; cursor: Record<string, unknown> };

/** Why a driver could not do what it was asked: these become the drift reasons operators see. */
export type DriverFailure = 'download-failed' | 'start-failed' | 'runtime-unavailable';

export class DriverError extends Error {
  readonly reason: DriverFailure;
  constructor(reason: DriverFailure, message: string) {
    super(message);
    this.name = 'DriverError';
    this.reason = reason;
  }
}

export interface RuntimeDriver {
  readonly kind: RuntimeKind;
  /** Instances this agent created, running or not. Throws DriverError('runtime-unavailable') if the runtime cannot be reached. */
  list(): Promise<Instance[]>;
  /**
   * Makes what an instance needs available (pulls its image) without touching what runs, so a
   * download that fails costs no downtime. Throws DriverError('download-failed').
   */
  prepare?(spec: InstanceSpec): Promise<void>;
  /** Creates and starts an instance; makes its image or program available first. Idempotent for the same key and specHash. */
  create(spec: InstanceSpec): Promise<void>;
  /** Starts an existing, stopped instance. */
  start(key: string): Promise<void>;
  /** Stops and deletes an instance. Never deletes volumes or data directories. A missing instance is not an error. */
  remove(key: string): Promise<void>;
  /** Runs a command inside the instance (container) or beside it (process); used by command health checks. */
  exec?(key: string, command: string[], signal: AbortSignal): Promise<{ exitCode: number; output: string }>;
  /**
   * Reads the instance's output (stdout and stderr) after `cursor` (null: from the start of what
   * the runtime still keeps), at most about `maxBytes` and `maxLines`. Whole lines only, oldest first.
   */
  readLogs?(key: string, cursor: Record<string, unknown> | null, maxBytes: number, maxLines?: number): Promise<LogRead>;
  close(): Promise<void>;
}

/** Which driver runs a component: `image:` means a container, otherwise a native process. */
export function runtimeOf(component: { image?: string }): RuntimeKind {
  return component.image ? 'container' : 'process';
}

export function instanceKey(deployment: string, component: string): string {
  return `${deployment}.${component}`;
}
