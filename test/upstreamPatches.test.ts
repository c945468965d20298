// The kit's changes to upstream code on the request path (.ci/build-preload.ts,
// upstreamPatches): each must give what the code it shortcuts gives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { plainRequestTarget } from '../src/telemetry/plainRequestTarget.ts';

test('a plain request target gives the path and query new URL() gives; any other is left to new URL()', () => {
  const targets = [
    '/',
    '/items/42',
    '/items/42?',
    '/items/42?a=1&b=2',
    '/a?b?c',
    '/a%20b?q=%41',
    '/odd!$&()*+,;=:@~_-.chars?x=y*z',
    '/a/./b',
    '/a/../b',
    '/a/%2e%2E/b',
    '/a/.',
    '//evil.example/x',
    '/a b',
    '/a"b',
    '/a<b>',
    '/a#frag',
    '/a\\b',
    "/a?x='y'",
    '/a`b',
    '/a{b}',
    '/é',
    '/a?q=é',
    '*',
    'http://proxy.example/x?y',
    '',
  ];
  let plain = 0;
  for (const target of targets) {
    const fast = plainRequestTarget(target);
    if (fast === undefined) continue;
    plain++;
    const url = new URL(target, 'http://localhost:8080');
    assert.deepEqual(fast, { pathname: url.pathname, search: url.search }, target);
  }
  assert.equal(plain, 7);
  assert.equal(plainRequestTarget(undefined), undefined);
});
