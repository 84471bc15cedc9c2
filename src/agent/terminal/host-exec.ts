import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants, homedir, userInfo } from 'node:os';

/**
 * Remote exec and shells on the device's host. Nothing here touches the container engine: when
 * Podman or Docker is stopped or broken, these still work (that is the point of the channel).
 */

export type HostRun = { exitCode: number; timedOut: boolean };

/** The environment a remote session starts with: a login's, not the agent's own (which may carry its flags' secrets). */
export function loginEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const user = safeUser();
  const home = env.HOME ?? user?.homedir ?? homedir();
  return {
    HOME: home,
    USER: user?.username ?? env.USER ?? 'root',
    LOGNAME: user?.username ?? env.LOGNAME ?? 'root',
    SHELL: loginShell(),
    PATH: env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    TERM: 'xterm-256color',
    LANG: env.LANG ?? 'C.UTF-8',
  };
}

/** `/bin/bash` where present, else `/bin/sh`. */
export function loginShell(exists: (path: string) => boolean = existsSync): string {
  return exists('/bin/bash') ? '/bin/bash' : '/bin/sh';
}

function safeUser(): { username: string; homedir: string } | null {
  try {
    return userInfo();
  } catch {
    return null;
  }
}

/** The exit status a shell would report: the code, or 128 + the number of the signal that killed it. */
export function exitStatusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal ? (constants.signals as Record<string, number>)[signal] : undefined;
  return number ? Math.min(255, 128 + number) : 255;
}

/**
 * Runs a command (argv, no shell) on the host; streams stdout and stderr as they come, kills the
 * whole process group at the deadline or when `signal` aborts. A command that does not exist exits
 * 127 with a message, as a shell would say it.
 */
export function runOnHost(
  command: readonly string[],
  opts: { timeoutMs: number; signal: AbortSignal; onOutput: (data: Buffer) => void; env?: Record<string, string>; cwd?: string },
): Promise<HostRun> {
  const env = opts.env ?? loginEnvironment();
  return new Promise((resolve) => {
    let timedOut = false;
    const child = spawn(command[0]!, command.slice(1), { env, cwd: opts.cwd ?? (existsSync(env.HOME!) ? env.HOME : '/'), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, opts.timeoutMs);
    const onAbort = () => killGroup();
    opts.signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', opts.onOutput);
    child.stderr.on('data', opts.onOutput);
    let done = false;
    const finish = (run: HostRun) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal.removeEventListener('abort', onAbort);
      resolve(run);
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      const missing = error.code === 'ENOENT';
      opts.onOutput(Buffer.from(`${command[0]}: ${missing ? 'command not found' : error.message}\n`));
      finish({ exitCode: missing ? 127 : 126, timedOut: false });
    });
    child.once('close', (code, signal) => finish({ exitCode: timedOut ? 124 : exitStatusOf(code, signal), timedOut }));
  });
}
