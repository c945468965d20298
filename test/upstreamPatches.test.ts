// The kit's changes to upstream code on the request path (.ci/build-preload.ts,
// upstreamPatches): each must give what the code it shortcuts gives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { internAttributes } from '../src/telemetry/internAttributes.ts';
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

test('metric attributes are interned: equal sets give one frozen object, the caller keeps its own', () => {
  const a = { 'http.request.method': 'GET', 'server.port': 8080, 'http.response.status_code': 200 };
  const b = { 'http.request.method': 'GET', 'server.port': 8080, 'http.response.status_code': 200 };
  const one = internAttributes(a);
  assert.equal(internAttributes(b), one);
  assert.ok(Object.isFrozen(one));
  assert.ok(!Object.isFrozen(a));
  assert.deepEqual(one, a);
  // A value's type counts, and so does a missing key against an undefined one.
  assert.notEqual(internAttributes({ ...a, 'server.port': '8080' }), one);
  assert.notEqual(internAttributes({ ...a, 'error.type': undefined }), one);
  // An array value: left as it is.
  const withArray = { 'http.request.method': 'GET', tags: ['x'] };
  assert.equal(internAttributes(withArray), withArray);
});
