import { existsSync } from 'node:fs';
import { loginEnvironment, loginShell } from './host-exec.ts';

/** A shell on a pseudo-terminal, as the session host uses it (node-pty in production, a fake in tests). */
export type Terminal = {
  write(data: Buffer): void;
  resize(cols: number, rows: number): void;
  /** Hangs up: SIGHUP to the shell, as when a terminal closes. */
  kill(): void;
  pause(): void;
  resume(): void;
  onData(listener: (data: Buffer) => void): void;
  onExit(listener: (exitCode: number) => void): void;
};

export type SpawnTerminal = (size: { cols: number; rows: number }) => Promise<Terminal>;

/**
 * A login shell on a real PTY through node-pty. The native module is loaded on the first shell,
 * not with the agent: a device that never opens a terminal (and the simulator) never loads it.
 */
export const spawnPtyTerminal: SpawnTerminal = async ({ cols, rows }) => {
  const pty = await import('node-pty');
  const env = loginEnvironment();
  const shell = loginShell();
  const child = pty.spawn(shell, ['-l'], { name: 'xterm-256color', cols, rows, cwd: existsSync(env.HOME!) ? env.HOME! : '/', env, encoding: null });
  return {
    write: (data) => child.write(data),
    resize: (c, r) => child.resize(c, r),
    kill: () => {
      try {
        child.kill('SIGHUP');
      } catch {
        // already exited
      }
    },
    pause: () => child.pause(),
    resume: () => child.resume(),
    onData: (listener) => void child.onData((data: string | Buffer) => listener(Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'))),
    // node-pty reports a shell killed by a signal as code 0 and that signal: a shell's status is 128 + it.
    onExit: (listener) => void child.onExit(({ exitCode, signal }) => listener(signal ? Math.min(255, 128 + signal) : exitCode)),
  };
};
