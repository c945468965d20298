import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyStatus } from '../src/telemetry/classifyStatus.ts';

test('classifyStatus follows the seed: success, rate_limited, client_error, server_error, network_error', () => {
  const cases: [number | undefined, unknown, string][] = [
    [200, undefined, 'success'],
    [204, undefined, 'success'],
    [301, undefined, 'success'],
    [399, undefined, 'success'],
    [400, undefined, 'client_error'],
    [404, undefined, 'client_error'],
    [428, undefined, 'client_error'],
    [429, undefined, 'rate_limited'],
    [430, undefined, 'client_error'],
    [499, undefined, 'client_error'],
    [500, undefined, 'server_error'],
    [503, undefined, 'server_error'],
    [100, undefined, 'server_error'],
    [199, undefined, 'server_error'],
    [600, undefined, 'server_error'],
    [undefined, undefined, 'network_error'],
    [200, new Error('reset after headers'), 'network_error'],
    [undefined, new Error('ECONNREFUSED'), 'network_error'],
  ];
  for (const [status, error, expected] of cases) {
    assert.equal(classifyStatus(status, error), expected, `status ${status} error ${String(error)}`);
  }
  assert.equal(classifyStatus(null), 'network_error');
  assert.equal(classifyStatus(), 'network_error');
});
