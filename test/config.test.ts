import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError,
  isConfigError,
  readBoolean,
  readEnum,
  readKitConfig,
  readNonNegativeMs,
  readOtelNumber,
  readPositiveMs,
  resourceAttributes,
  serviceIdentity,
} from '../src/config.ts';
import { Timeouts, timeoutKey } from '../src/resilience/timeouts.ts';

test('positive milliseconds: whole numbers above zero, else a ConfigError naming variable, value and form', () => {
  assert.equal(readPositiveMs({ X_TIMEOUT_MS: ' 250 ' }, 'X_TIMEOUT_MS', 1), 250);
  assert.equal(readPositiveMs({}, 'X_TIMEOUT_MS', 42), 42);
  assert.equal(readPositiveMs({ X_TIMEOUT_MS: '' }, 'X_TIMEOUT_MS', 42), 42);
  for (const bad of ['0', '-5', '1.5', '5s', 'abc', '1e3', '99999999999999999999']) {
    assert.throws(
      () => readPositiveMs({ X_TIMEOUT_MS: bad }, 'X_TIMEOUT_MS', 1),
      (e: unknown) =>
        isConfigError(e) &&
        e.message ===
          `invalid X_TIMEOUT_MS=${JSON.stringify(bad)}: expected a positive whole number of milliseconds`,
    );
  }
  assert.equal(readNonNegativeMs({ D: '0' }, 'D', 5), 0);
  assert.throws(() => readNonNegativeMs({ D: '-1' }, 'D', 5), ConfigError);
});

test('enums and booleans', () => {
  assert.equal(readEnum({ L: 'WARN' }, 'L', ['info', 'warn'], 'info'), 'warn');
  assert.throws(
    () => readEnum({ L: 'loud' }, 'L', ['info', 'warn'], 'info'),
    /invalid L="loud": expected one of info, warn/,
  );
  assert.equal(readBoolean({ B: 'TRUE' }, 'B', false), true);
  assert.equal(readBoolean({ B: '0' }, 'B', true), false);
  assert.throws(() => readBoolean({ B: 'yes please' }, 'B', false), /expected true or false/);
});

test('OTEL_* values warn and fall back instead of throwing', () => {
  const warnings: string[] = [];
  assert.equal(
    readOtelNumber({ P: 'http' }, 'P', 9464, (m) => warnings.push(m), { min: 1, max: 65535 }),
    9464,
  );
  assert.equal(
    readOtelNumber({ P: '0' }, 'P', 9464, (m) => warnings.push(m), { min: 1, max: 65535 }),
    9464,
  );
  assert.equal(
    readOtelNumber({ P: '9100' }, 'P', 9464, (m) => warnings.push(m), { min: 1, max: 65535 }),
    9100,
  );
  assert.equal(warnings.length, 2);
  assert.match(warnings[0] ?? '', /invalid P="http".*using 9464/);
});

test('readKitConfig checks every kit variable that is set', () => {
  readKitConfig({
    LOG_LEVEL: 'debug',
    PAYMENT_API_TIMEOUT_MS: '200',
    OTEL_EXPORTER_OTLP_TIMEOUT: 'x',
  });
  assert.throws(() => readKitConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/);
  assert.throws(() => readKitConfig({ SHUTDOWN_DRAIN_DELAY_MS: 'soon' }), /SHUTDOWN_DRAIN_DELAY_MS/);
  assert.throws(() => readKitConfig({ INVENTORY_TIMEOUT_MS: '0' }), /INVENTORY_TIMEOUT_MS="0"/);
  assert.throws(
    () => readKitConfig({ SHUTDOWN_DRAIN_DELAY_MS: '30000' }),
    /invalid SHUTDOWN_DRAIN_DELAY_MS="30000": expected less than the shutdown timeout \(30000 ms\)/,
  );
  readKitConfig({ SHUTDOWN_TIMEOUT_MS: '60000', SHUTDOWN_DRAIN_DELAY_MS: '30000' });
  assert.throws(() => readKitConfig({ S3_ENDPOINT: 'minio:9000' }), /invalid S3_ENDPOINT="minio:9000"/);
  assert.throws(() => readKitConfig({ S3_FORCE_PATH_STYLE: 'yes' }), /invalid S3_FORCE_PATH_STYLE="yes"/);
  readKitConfig({ S3_ENDPOINT: 'http://127.0.0.1:9000', S3_FORCE_PATH_STYLE: 'true' });
  assert.equal(readKitConfig({}).logBufferMs, 10);
  assert.equal(readKitConfig({ LOG_BUFFER_MS: '0' }).logBufferMs, 0);
  assert.throws(() => readKitConfig({ LOG_BUFFER_MS: '-1' }), /invalid LOG_BUFFER_MS="-1"/);
  assert.throws(
    () => readKitConfig({ LOG_BUFFER_MS: '60001' }),
    /invalid LOG_BUFFER_MS="60001": expected a whole number of milliseconds, 0 to 60000/,
  );
});

test('service identity from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES', () => {
  assert.deepEqual(serviceIdentity({}), {
    name: 'unknown_service:node',
    version: undefined,
    environment: undefined,
  });
  assert.deepEqual(
    serviceIdentity({
      OTEL_RESOURCE_ATTRIBUTES:
        'service.name=from-attrs,service.version=1.2.3,deployment.environment.name=prod%20eu',
      NODE_ENV: 'development',
    }),
    { name: 'from-attrs', version: '1.2.3', environment: 'prod eu' },
  );
  assert.equal(
    serviceIdentity({ OTEL_SERVICE_NAME: 'checkout', OTEL_RESOURCE_ATTRIBUTES: 'service.name=x' }).name,
    'checkout',
  );
  assert.deepEqual(
    [...resourceAttributes({ OTEL_RESOURCE_ATTRIBUTES: 'a=1,broken,b=%E0%A4%A,c=3' })],
    [
      ['a', '1'],
      ['c', '3'],
    ],
  );
});

test('timeouts: <NAME>_TIMEOUT_MS, else the given default, else the built-in one', () => {
  const t = new Timeouts({ PAYMENT_API_TIMEOUT_MS: '200', INVENTORY_TIMEOUT_MS: '750' });
  assert.equal(t.get('PAYMENT_API'), 200);
  assert.equal(t.get('payment-api'), 200);
  assert.equal(t.get('paymentApi'), 200);
  assert.equal(t.get('inventory', 100), 750);
  assert.equal(t.get('USER_SERVICE'), 10_000, 'no built-in default for an application dependency');
  assert.equal(t.get('S3'), 30_000);
  assert.equal(t.get('search', 1234), 1234);
  assert.equal(t.get('search'), 10_000);
  assert.equal(timeoutKey('user.service'), 'USER_SERVICE');
  assert.throws(() => new Timeouts({ S3_TIMEOUT_MS: 'fast' }), /invalid S3_TIMEOUT_MS="fast"/);
});
