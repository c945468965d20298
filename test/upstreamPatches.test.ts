// The kit's changes to upstream code on the request path (.ci/build-preload.ts,
// upstreamPatches): each must give what the code it shortcuts gives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { plainRequestTarget, plainRequestUrl } from '../src/telemetry/plainRequestTarget.ts';

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

test('a plain origin and target give the URL parts new URL(path, origin) gives; any other is left to new URL()', () => {
  const cases: [string, string][] = [
    ['http://127.0.0.1:8080', '/tiny'],
    ['http://127.0.0.1:8080', '/tiny?x=1&y=%20'],
    ['https://api.example.com', '/v1/orders/42?'],
    ['http://payments.internal:3000', '/charge'],
    ['http://127.0.0.1:80', '/x'],
    ['https://api.example.com:443', '/x'],
    ['http://[::1]:8080', '/x'],
    ['http://user@host', '/x'],
    ['http://host:8080', '/a/../b'],
    ['http://host:8080', 'relative'],
  ];
  let plain = 0;
  for (const [origin, path] of cases) {
    const fast = plainRequestUrl(origin, path);
    if (fast === undefined) continue;
    plain++;
    const url = new URL(path, origin);
    const { protocol, hostname, port, pathname, search } = url;
    assert.deepEqual(
      {
        protocol: fast.protocol,
        hostname: fast.hostname,
        port: fast.port,
        pathname: fast.pathname,
        search: fast.search,
      },
      { protocol, hostname, port, pathname, search },
      `${origin} ${path}`,
    );
    assert.equal(fast.toString(), url.toString(), `${origin} ${path}`);
  }
  assert.equal(plain, 4);
});
