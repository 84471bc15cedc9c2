import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DriftlessError } from './errors.ts';
import { matchesRequirements, parseLabelSelector, selectorMatches } from './selectors.ts';

describe('parseLabelSelector', () => {
  test('reads every form kubectl knows', () => {
    assert.deepEqual(parseLabelSelector('tier=store, region!=eu ,gpu,!legacy,env==prod,empty='), [
      { key: 'tier', op: '=', value: 'store' },
      { key: 'region', op: '!=', value: 'eu' },
      { key: 'gpu', op: 'exists' },
      { key: 'legacy', op: '!exists' },
      { key: 'env', op: '=', value: 'prod' },
      { key: 'empty', op: '=', value: '' },
    ]);
  });

  test('an empty selector (or empty parts) has no requirements', () => {
    assert.deepEqual(parseLabelSelector(''), []);
    assert.deepEqual(parseLabelSelector(' , ,'), []);
  });

  test('keys with prefixes and dots', () => {
    assert.deepEqual(parseLabelSelector('example.com/role=edge'), [{ key: 'example.com/role', op: '=', value: 'edge' }]);
  });

  for (const bad of ['tier in (a,b)', '=store', 'a=b=c', '!tier=store', 'ti er=x', 'a=b c']) {
    test(`refuses "${bad}" with invalid-input naming the part`, () => {
      assert.throws(
        () => parseLabelSelector(bad),
        (error: unknown) => error instanceof DriftlessError && error.code === 'invalid-input' && error.message.startsWith('label selector:'),
      );
    });
  }
});

describe('matchesRequirements', () => {
  const labels = { tier: 'store', region: 'eu', gpu: '' };
  const cases: [string, boolean][] = [
    ['tier=store', true],
    ['tier=kiosk', false],
    ['tier!=kiosk', true],
    ['tier!=store', false],
    ['missing!=x', true],
    ['gpu', true],
    ['missing', false],
    ['!missing', true],
    ['!gpu', false],
    ['gpu=', true],
    ['tier=store,region=eu', true],
    ['tier=store,region=us', false],
    ['', true],
  ];
  for (const [selector, expected] of cases) {
    test(`"${selector}" ${expected ? 'matches' : 'does not match'}`, () => assert.equal(matchesRequirements(labels, parseLabelSelector(selector)), expected));
  }

  test('inherited properties are not labels', () => {
    assert.equal(matchesRequirements({}, parseLabelSelector('constructor')), false);
    assert.equal(matchesRequirements({}, parseLabelSelector('toString!=x')), true);
  });
});

describe('selectorMatches', () => {
  const device = { labels: { tier: 'store', region: 'eu' }, site: 'store-12' };
  test('an empty selector picks every device, with or without a site', () => {
    assert.equal(selectorMatches({}, device), true);
    assert.equal(selectorMatches({ sites: [], matchLabels: {} }, { labels: {}, site: null }), true);
  });
  test('matchLabels needs every label to be equal', () => {
    assert.equal(selectorMatches({ matchLabels: { tier: 'store' } }, device), true);
    assert.equal(selectorMatches({ matchLabels: { tier: 'store', region: 'us' } }, device), false);
    assert.equal(selectorMatches({ matchLabels: { gpu: 'yes' } }, device), false);
  });
  test('sites needs the device to be in one of them; a device with no site is in none', () => {
    assert.equal(selectorMatches({ sites: ['store-11', 'store-12'] }, device), true);
    assert.equal(selectorMatches({ sites: ['store-11'] }, device), false);
    assert.equal(selectorMatches({ sites: ['store-11'] }, { ...device, site: null }), false);
  });
  test('sites and labels must both hold', () => {
    assert.equal(selectorMatches({ sites: ['store-12'], matchLabels: { tier: 'kiosk' } }, device), false);
    assert.equal(selectorMatches({ sites: ['store-12'], matchLabels: { tier: 'store' } }, device), true);
  });
  test('inherited properties are not labels', () => {
    assert.equal(selectorMatches({ matchLabels: { constructor: 'x' } }, { labels: {}, site: null }), false);
  });
});
