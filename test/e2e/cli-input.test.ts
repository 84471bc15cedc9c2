import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createFleet, uniqueTag, type CliResult, type Fleet } from '../support/fleet.ts';
import { waitUntil } from '../support/wait.ts';

// Bad input from a file, a flag or the network gets one clear line naming what was wrong, a
// non-zero exit (or a 4xx with { error: { code, message } }), and changes nothing on the server.

const tag = uniqueTag();
const BASELINE = `base-${tag}`;

const deployment = (name: string, version = '1') => `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  selector: { matchLabels: { tier: input-${tag} } }
  template:
    version: "${version}"
    components:
      - name: web
        image: localhost/driftless-web:1
`;

/** Bad manifests: the line and field each error must name (lines count from 1, across documents). */
const badManifests: { case: string; text: string; line: number; field?: string; says: RegExp }[] = [
  {
    case: 'malformed YAML',
    text: `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: broken-${tag}
spec:
  selector: {}
   template: {}
`,
    line: 7,
    says: /YAML/,
  },
  {
    case: 'a duplicated key',
    text: `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: dup-${tag}
  name: dup2-${tag}
spec: {}
`,
    line: 5,
    says: /unique/i,
  },
  {
    case: 'an unknown field',
    text: `${deployment(`unknown-${tag}`)}        imagePullPolicy: Always\n`,
    line: 12,
    field: 'spec.template.components[0].imagePullPolicy',
    says: /unknown field/,
  },
  {
    case: 'a wrong type',
    text: `${deployment(`type-${tag}`)}        health:\n          timeoutSeconds: soon\n`,
    line: 13,
    field: 'spec.template.components[0].health.timeoutSeconds',
    says: /number/,
  },
  {
    case: 'a missing required field',
    text: deployment(`missing-${tag}`).replace(/ {4}version: "1"\n/, ''),
    line: 7,
    field: 'spec.template.version',
    says: /missing required field/,
  },
  {
    case: 'a wrong resource type',
    text: deployment(`kind-${tag}`).replace('kind: Deployment', 'kind: Widget'),
    line: 2,
    field: 'kind',
    says: /Widget/,
  },
  {
    case: 'a multi-document file whose second document is bad',
    text: `${deployment(`first-of-two-${tag}`)}---\n${deployment(`second-of-two-${tag}`).replace('image: localhost', 'imag: localhost')}`,
    line: 23,
    field: 'spec.template.components[0].imag',
    says: /unknown field/,
  },
];

function assertOneLine(result: CliResult, what: string): string {
  assert.notEqual(result.code, 0, `${what}: exit status must be non-zero; stdout: ${result.stdout}`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${what}: exactly one line on stderr, got:\n${result.stderr}`);
  assert.ok(lines[0]!.length > 0, `${what}: the error line is empty`);
  assert.doesNotMatch(result.stderr, /\n\s+at |Error:/, `${what}: no stack trace`);
  assert.equal(result.stdout, '', `${what}: nothing on stdout`);
  return lines[0]!;
}

describe('bad input is refused clearly and changes nothing', { timeout: 240_000 }, () => {
  let fleet: Fleet;
  /** The server's resources as the CLI prints them, taken after the one good apply. */
  let deploymentsJson: string;
  let sitesJson: string;

  const unchanged = async (what: string) => {
    assert.equal((await fleet.api('/v1/deployments')).text, deploymentsJson, `${what}: deployments changed`);
    assert.equal((await fleet.api('/v1/sites')).text, sitesJson, `${what}: sites changed`);
  };
  const unchangedViaCli = async () => {
    const now = await fleet.cliJson<unknown>(['get', 'deployments', '-o', 'json']);
    assert.deepEqual(now, JSON.parse(deploymentsJson), '`get deployments -o json` is what it was');
  };

  before(async () => {
    fleet = createFleet('cli-input');
    await fleet.startServer();
    await fleet.apply('baseline.yaml', deployment(BASELINE));
    // The baseline's rollout (to no device) completes at the engine's next tick; snapshot after it.
    await waitUntil('the baseline rollout to complete', async () => {
      const rollouts = JSON.parse((await fleet.api('/v1/rollouts')).text) as { state: string }[];
      return rollouts.length > 0 && rollouts.every((r) => r.state === 'complete') ? true : undefined;
    });
    deploymentsJson = (await fleet.api('/v1/deployments')).text;
    sitesJson = (await fleet.api('/v1/sites')).text;
    assert.match(deploymentsJson, new RegExp(BASELINE));
  });

  after(async () => {
    await fleet?.cleanup();
  });

  describe('manifests: one line naming the file, the line and the field', () => {
    for (const bad of badManifests) {
      it(bad.case, async () => {
        const file = fleet.writeFile(`${bad.case.replace(/[^a-z]+/g, '-')}.yaml`, bad.text);
        const line = assertOneLine(await fleet.cli(['apply', '-f', file]), bad.case);
        assert.ok(line.includes(`${basename(file)}:${bad.line}:`), `${bad.case}: names ${basename(file)}:${bad.line}: in "${line}"`);
        if (bad.field) assert.ok(line.includes(bad.field), `${bad.case}: names the field ${bad.field} in "${line}"`);
        assert.match(line, bad.says);
        await unchanged(bad.case);
      });
    }

    it('nothing was applied, as `get deployments -o json` shows', async () => {
      await unchangedViaCli();
    });
  });

  describe('flags: one line naming the flag or the word', () => {
    const cases: { case: string; args: string[]; names: string }[] = [
      { case: 'an unknown flag', args: ['get', 'devices', '--bogus'], names: '--bogus' },
      { case: 'an unknown output format', args: ['get', 'devices', '-o', 'xml'], names: 'xml' },
      { case: 'a wrong resource type', args: ['get', 'widgets'], names: 'widgets' },
      { case: 'apply without -f', args: ['apply'], names: '-f' },
      { case: 'a file that does not exist', args: ['apply', '-f', '/nonexistent/driftless.yaml'], names: '/nonexistent/driftless.yaml' },
    ];
    for (const c of cases) {
      it(c.case, async () => {
        const line = assertOneLine(await fleet.cli(c.args), c.case);
        assert.ok(line.includes(c.names), `${c.case}: "${line}" names ${c.names}`);
        await unchanged(c.case);
      });
    }
  });

  describe('the API: 4xx with { error: { code, message } }', () => {
    const site = `api-site-${tag}`;
    const goodSite = { apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: site } };
    const json = { 'content-type': 'application/json' };
    const cases: { case: string; path?: string; body: string; headers?: Record<string, string>; token?: string | null; status: number; code: string; says: RegExp }[] = [
      { case: 'invalid JSON', body: '{"resources": [', headers: json, status: 400, code: 'invalid-input', says: /JSON/ },
      { case: 'a body of the wrong shape', body: JSON.stringify({ resource: [goodSite] }), headers: json, status: 400, code: 'invalid-input', says: /resources/ },
      { case: 'resources that are not a list', body: JSON.stringify({ resources: 'all' }), headers: json, status: 400, code: 'invalid-input', says: /resources/ },
      {
        case: 'one bad resource among good ones (all or nothing)',
        body: JSON.stringify({ resources: [goodSite, { apiVersion: 'driftless/v1', kind: 'Deployment', metadata: { name: `x-${tag}` }, spec: {} }] }),
        headers: json,
        status: 400,
        code: 'invalid-input',
        says: /resources\[1\].*spec\.selector/,
      },
      { case: 'no credentials', body: JSON.stringify({ resources: [goodSite] }), headers: json, token: null, status: 401, code: 'unauthorized', says: /token/ },
      { case: 'a wrong token', body: JSON.stringify({ resources: [goodSite] }), headers: json, token: 'not-a-token', status: 401, code: 'unauthorized', says: /token/ },
      { case: 'an unknown query parameter', path: '/v1/apply?dryRun=true', body: JSON.stringify({ resources: [goodSite] }), headers: json, status: 400, code: 'invalid-input', says: /dryRun/ },
      { case: 'a body that is not JSON', body: 'resources=all', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'invalid-input', says: /json/i },
    ];
    for (const c of cases) {
      it(c.case, async () => {
        const answer = await fleet.api(c.path ?? '/v1/apply', { method: 'POST', body: c.body, headers: c.headers ?? {}, ...(c.token !== undefined ? { token: c.token } : {}) });
        assert.equal(answer.status, c.status, `${c.case}: ${answer.text}`);
        const error = (answer.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
        assert.ok(error && typeof error.code === 'string' && typeof error.message === 'string', `${c.case}: { error: { code, message } }, got ${answer.text}`);
        assert.equal(error.code, c.code, answer.text);
        assert.match(error.message as string, c.says);
        await unchanged(c.case);
      });
    }

    it('an unknown query parameter on a list is refused too', async () => {
      const answer = await fleet.api('/v1/devices?bogus=1');
      assert.equal(answer.status, 400, answer.text);
      assert.match((answer.body as { error: { message: string } }).error.message, /bogus/);
    });

    it('after all that, the same request done right is applied', async () => {
      const answer = await fleet.api('/v1/apply', { method: 'POST', body: JSON.stringify({ resources: [goodSite] }), headers: json });
      assert.equal(answer.status, 200, answer.text);
      assert.match((await fleet.api('/v1/sites')).text, new RegExp(site));
    });
  });
});
