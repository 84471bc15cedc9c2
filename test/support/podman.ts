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
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 5 s')));
    req.on('error', reject);
    req.end();
  });
}
