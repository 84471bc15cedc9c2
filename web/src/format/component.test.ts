import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { componentLabel } from './component.ts';

describe('componentLabel', () => {
  test('deployment.component: the component, with its Deployment when the names differ', () => {
    assert.deepEqual(componentLabel('pos.pos'), { component: 'pos', deployment: null });
    assert.deepEqual(componentLabel('shop.web'), { component: 'web', deployment: 'shop' });
  });

  test('only the first dot separates: component names may hold dots', () => {
    assert.deepEqual(componentLabel('shop.web.v2'), { component: 'web.v2', deployment: 'shop' });
  });

  test('a name without a deployment part is shown as it is', () => {
    for (const key of ['agent', '.web', 'shop.', '']) assert.deepEqual(componentLabel(key), { component: key, deployment: null });
  });
});
