import { request } from 'node:http';

/**
 * The real Podman that container tests run against. Tests never skip when it is missing: a
 * skipped suite looks green in CI, so they fail and say how to fix the machine.
 */

/** Images built locally by scripts/build-test-images.sh (no registry is reachable). */
export const TEST_IMAGES = {
  v1: 'localhost/driftless-web:1',
  v2: 'localhost/driftless-web:2',
  /** Serves /version but not /healthz: an HTTP health check on /healthz gets 404. */
  bad: 'localhost/driftless-web:bad',
} as const;

/** The port the test images' httpd listens on inside the container. */
export const TEST_IMAGE_PORT = 8080;

export function podmanSocketPath(): string {
  return process.env.DRIFTLESS_PODMAN_SOCKET ?? '/run/podman/podman.sock';
}

const FIX = 'run `bash scripts/setup-system.sh` as root (it installs Podman, starts its API service and builds the test images)';

/** Throws unless Podman answers on its socket and every test image is present. */
export async function assertPodmanReady(images: readonly string[] = Object.values(TEST_IMAGES)): Promise<void> {
  const socketPath = podmanSocketPath();
  let ping: { status: number; body: string };
  try {
    ping = await get(socketPath, '/_ping');
  } catch (err) {
    throw new Error(`Podman is not answering on ${socketPath} (${(err as Error).message}): ${FIX}`);
  }
  if (ping.status !== 200) throw new Error(`Podman on ${socketPath} answered /_ping with HTTP ${ping.status}: ${FIX}`);
  for (const image of images) {
    const found = await get(socketPath, `/images/${encodeURIComponent(image)}/json`);
    if (found.status !== 200) throw new Error(`test image ${image} is missing from Podman: ${FIX}`);
  }
}

function get(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return call(socketPath, 'GET', path);
}

function call(socketPath: string, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, agent: false, timeout: method === 'GET' ? 5000 : 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// ---- Looking at what agents created, through the same Docker Engine API the agent uses ----

/** The label every container of an agent carries (see the container driver). */
export const AGENT_LABEL = 'io.driftless.agent';

/** A container as the engine lists it (the fields the tests read). */
export type ListedContainer = {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Labels: Record<string, string>;
  Ports: { PrivatePort: number; PublicPort?: number; Type: string; IP?: string }[];
};

async function engine(method: string, path: string): Promise<{ status: number; body: string }> {
  return call(podmanSocketPath(), method, path);
}

/** Every container (running or not) labelled as created by this agent. */
export async function agentContainers(agent: string): Promise<ListedContainer[]> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`${AGENT_LABEL}=${agent}`] }));
  const answer = await engine('GET', `/containers/json?all=true&filters=${filters}`);
  if (answer.status !== 200) throw new Error(`listing containers of ${agent}: HTTP ${answer.status} ${answer.body}`);
  return JSON.parse(answer.body) as ListedContainer[];
}

/** The host port the engine published for a container port (ephemeral ports are chosen by the engine). */
export function hostPortOf(container: ListedContainer, containerPort: number = TEST_IMAGE_PORT): number | null {
  const found = container.Ports.find((p) => p.PrivatePort === containerPort && p.PublicPort);
  return found?.PublicPort ?? null;
}

export async function inspectContainer(idOrName: string): Promise<{ Id: string; Name: string; State: { Running: boolean; StartedAt: string; Status: string } } | null> {
  const answer = await engine('GET', `/containers/${encodeURIComponent(idOrName)}/json`);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw new Error(`inspecting ${idOrName}: HTTP ${answer.status} ${answer.body}`);
  return JSON.parse(answer.body) as { Id: string; Name: string; State: { Running: boolean; StartedAt: string; Status: string } };
}

/** `podman stop`, as an operator on the device would do it by hand. */
export async function stopContainer(idOrName: string, timeoutSeconds = 2): Promise<void> {
  const answer = await engine('POST', `/containers/${encodeURIComponent(idOrName)}/stop?t=${timeoutSeconds}`);
  if (answer.status !== 204 && answer.status !== 304) throw new Error(`stopping ${idOrName}: HTTP ${answer.status} ${answer.body}`);
}

/** Removes every container of these agents, and nothing else: test clean-up. */
export async function removeAgentContainers(agents: readonly string[]): Promise<void> {
  for (const agent of agents) {
    for (const container of await agentContainers(agent).catch(() => [] as ListedContainer[])) {
      await engine('DELETE', `/containers/${container.Id}?force=true&v=false`).catch(() => undefined);
    }
  }
}
