import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { findProcesses, killPids, spawnChild, type Child } from '../support/child.ts';
import { forwardRequest } from '../support/desired-state-proxy.ts';
import { componentOf, createFleet, DRIFTLESS, ROOT, uniqueTag, type Fleet } from '../support/fleet.ts';
import { waitFor, waitUntil } from '../support/wait.ts';

// A/B self-update of the agent, through `driftless launcher`: a release that crashes on start is
// abandoned by the device itself, with the server down, and reported once the old agent is back;
// a good release is committed and is what boots after the launcher is killed and started again.

const tag = uniqueTag();
const device = `ab-${tag}`;
const DEPLOYMENT = `agent-${tag}`;
const TRIAL_SECONDS = 20;

/**
 * The device's link to the server: forwards every request, and is cut (every connection reset)
 * from the moment it has delivered a given artifact, so what the device does next it does alone.
 */
type Link = { url: string; upstream: string; cutAfterDownloadOf(sha256: string): void; restore(): void; readonly cut: boolean; close(): Promise<void> };

async function startLink(upstream: string): Promise<Link> {
  let cutAfter: string | null = null;
  let cut = false;
  const server: Server = createServer((req, res) => {
    if (cut) return void req.socket.destroy();
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const answer = await forwardRequest(new URL(link.upstream), req, Buffer.concat(chunks));
      if (cut) return void req.socket.destroy();
      const headers = { ...answer.headers };
      delete headers['transfer-encoding'];
      delete headers.connection;
      res.writeHead(answer.status, { ...headers, 'content-length': answer.body.length });
      const delivered = cutAfter !== null && answer.status === 200 && req.url === `/v1/device/artifacts/${cutAfter}`;
      res.end(answer.body, () => {
        if (delivered) cut = true;
      });
    })().catch(() => req.socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const link: Link = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upstream,
    cutAfterDownloadOf(sha256) {
      cutAfter = sha256;
    },
    restore() {
      cut = false;
      cutAfter = null;
    },
    get cut() {
      return cut;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return link;
}

function manifest(sha256: string): string {
  return `apiVersion: driftless/v1
kind: Deployment
metadata: { name: ${DEPLOYMENT} }
spec:
  selector: { matchLabels: { tier: ab-${tag} } }
  strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 }
  template:
    version: "agent"
    components:
      - name: agent
        agent: { artifact: "${sha256}" }
`;
}

/** The launcher's log line, with the time it printed it. */
async function logged(launcher: Child, pattern: RegExp, from = 0): Promise<{ atMs: number; end: number }> {
  const match = await launcher.waitForStderr(new RegExp(`(\\S+) [^\\n]*${pattern.source}`), { timeoutMs: 120_000, from });
  return { atMs: Date.parse(match[1]!), end: from + match.index! + match[0].length };
}

describe('agent A/B self-update', { timeout: 420_000 }, () => {
  let fleet: Fleet;
  let link: Link;
  let launcher: Child;
  const dataDir = () => join(fleet.dir, 'device');
  const agentPids = () => findProcesses(({ env }) => env.includes(`DRIFTLESS_SLOTS=${join(dataDir(), 'slots')}`));
  const startLauncher = () => {
    const cwd = join(fleet.dir, 'cwd');
    mkdirSync(cwd, { recursive: true });
    const args = ['launcher', '--data', dataDir(), '--boot-attempts', '2', '--trial-seconds', String(TRIAL_SECONDS), '--'];
    const agentArgs = ['--server', link.url, '--enroll-token', fleet.enrollToken, '--name', device, '--label', `tier=ab-${tag}`, '--poll-interval', '1', '--reconcile-interval', '1'];
    return spawnChild(DRIFTLESS, [...args, ...agentArgs], { cwd, env: fleet.env, label: `launcher ${device}` });
  };
  const agentComponent = async () => componentOf((await fleet.devices()).find((d) => d.name === device), 'agent');
  const context = () => `${fleet.diagnostics()}\n--- launcher:\n${launcher?.tail(60)}`;
  const push = (file: string, text: string, version: string) =>
    fleet.cliJson<{ sha256: string; version: string }>(['artifact', 'push', fleet.writeFile(file, text), '--name', 'driftless-agent', '--version', version, '-o', 'json']);

  before(async () => {
    fleet = createFleet('agent-update');
    const server = await fleet.startServer();
    link = await startLink(server.url);
    launcher = startLauncher();
    await fleet.waitForDevices('the agent to enrol through the launcher', (ds) => ds.some((d) => d.name === device && d.online), { context });
  });

  after(async () => {
    await launcher?.stop(5000);
    killPids(agentPids());
    await link?.close();
    await fleet?.cleanup();
  });

  it('a release that crashes on start is abandoned by the device alone, within its deadline, and reported once the old agent is back', async () => {
    const bad = await push('bad-agent.mjs', 'process.exit(1);\n', '0.9.0-bad');
    link.cutAfterDownloadOf(bad.sha256);
    await fleet.apply('agent-bad.yaml', manifest(bad.sha256));

    const switched = await logged(launcher, /launcher: switching to slot a \(version 0\.9\.0-bad\)/);
    // The management plane goes away as well: nothing it does can help the device now.
    const server = fleet.server!;
    await server.stop();
    const gaveUp = await logged(launcher, /launcher: gave up on version 0\.9\.0-bad \(slot a\): failed to start 2 times: exit code 1; back to the factory agent/, switched.end);
    assert.ok(link.cut, 'the link was down from the download on');
    assert.ok(gaveUp.atMs - switched.atMs < TRIAL_SECONDS * 1000, `reverted within the ${TRIAL_SECONDS}s deadline (took ${gaveUp.atMs - switched.atMs} ms)`);
    await logged(launcher, /launcher: booting the factory agent \(version 0\.1\.0\)/, gaveUp.end);

    // The server returns; the old agent reports what happened, once.
    const again = await fleet.startServer({ listen: `127.0.0.1:${server.port}`, dataDir: server.dataDir });
    link.upstream = again.url;
    link.restore();
    await waitFor('the agent component reported as reverted', agentComponent, (c) => c?.state === 'reverted' && c.reason === 'start-failed' && c.version === '0.1.0', { timeoutMs: 60_000, context });
    const component = await agentComponent();
    assert.equal(component?.desiredVersion, '0.9.0-bad');
    assert.match(component?.detail ?? '', /agent version 0\.9\.0-bad failed to start 2 times: exit code 1; reverted to version 0\.1\.0/);
    const failures = await waitUntil('the agent-update-failed event', async () => {
      const events = (await fleet.deviceDetail(device)).events.filter((e) => e.type === 'agent-update-failed');
      return events.length > 0 ? events : null;
    }, { context });
    assert.equal(failures.length, 1);
    assert.match(failures[0]!.message, /agent version 0\.9\.0-bad failed to start 2 times/);
    // The device stays on the old agent: no further attempt at the failed release.
    assert.doesNotMatch(launcher.stderr().slice(gaveUp.end), /switching to slot/);
  });

  it('a good release is committed, reported healthy with its version, and boots again after the launcher is killed', async () => {
    const main = pathToFileURL(join(ROOT, 'src/cli/main.ts')).href;
    const good = await push('good-agent.mjs', `import { main } from ${JSON.stringify(main)};\nprocess.exitCode = await main(process.argv.slice(2));\n`, '0.9.1');
    const from = launcher.stderr().length;
    await fleet.apply('agent-good.yaml', manifest(good.sha256));
    await logged(launcher, /launcher: committed slot a \(version 0\.9\.1\)/, from);
    await waitFor('the agent component healthy on 0.9.1', agentComponent, (c) => c?.state === 'healthy' && c.version === '0.9.1' && c.desiredVersion === '0.9.1', { timeoutMs: 90_000, context });
    await waitUntil('the agent-updated event', async () => (await fleet.deviceDetail(device)).events.some((e) => e.type === 'agent-updated' && /version 0\.9\.1/.test(e.message)), { context });

    // Killed without warning: its agent follows it (no orphan to boot twice), and the next launcher boots the committed slot.
    await launcher.kill();
    await waitUntil('the agent to exit with its launcher', () => agentPids().length === 0, { context });
    launcher = startLauncher();
    await logged(launcher, /launcher: booting slot a \(version 0\.9\.1\)/);
    assert.doesNotMatch(launcher.stderr(), /factory agent|trial attempt/);
    const seenBefore = (await fleet.devices()).find((d) => d.name === device)?.lastSeen ?? '';
    await fleet.waitForDevices('the restarted agent reporting 0.9.1', (ds) => {
      const d = ds.find((x) => x.name === device);
      const c = componentOf(d, 'agent');
      return d !== undefined && (d.lastSeen ?? '') > seenBefore && c?.state === 'healthy' && c.version === '0.9.1';
    }, { context });
  });
});
