import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tokenRequest } from './token-command.ts';

test('token create: flags become the request; mistakes are named before anything is sent', () => {
  assert.deepEqual(tokenRequest({ role: 'operator', expires: '30d', description: 'ci' }), { path: '/v1/tokens', body: { role: 'operator', expires: '30d', description: 'ci' } });
  assert.deepEqual(tokenRequest({ enroll: true, site: 'dock-3', uses: '5', expires: '7d' }), {
    path: '/v1/enroll-tokens',
    body: { expires: '7d', site: 'dock-3', uses: 5, autoAccept: false },
  });
  assert.deepEqual(tokenRequest({ enroll: true, autoAccept: true }).body, { autoAccept: true });
  assert.throws(() => tokenRequest({}), /--role: required/);
  assert.throws(() => tokenRequest({ role: 'root' }), /--role: "root"/);
  assert.throws(() => tokenRequest({ role: 'viewer', expires: 'soon' }), /--expires: "soon"/);
  assert.throws(() => tokenRequest({ role: 'viewer', site: 'x' }), /add --enroll/);
  assert.throws(() => tokenRequest({ enroll: true, role: 'viewer' }), /no role/);
  assert.throws(() => tokenRequest({ enroll: true, uses: '0' }), /--uses/);
});
