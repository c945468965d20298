import * as diagnosticsChannel from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { context } from '@opentelemetry/api';
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node';
import { getRPCMetadata, RPCType } from '@opentelemetry/core';
import type { Instrumentation, InstrumentationConfig } from '@opentelemetry/instrumentation';
import { AmqplibInstrumentation } from '@opentelemetry/instrumentation-amqplib';
import { AwsInstrumentation } from '@opentelemetry/instrumentation-aws-sdk';
import { BunyanInstrumentation } from '@opentelemetry/instrumentation-bunyan';
import { CassandraDriverInstrumentation } from '@opentelemetry/instrumentation-cassandra-driver';
import { ConnectInstrumentation } from '@opentelemetry/instrumentation-connect';
import { CucumberInstrumentation } from '@opentelemetry/instrumentation-cucumber';
import { DataloaderInstrumentation } from '@opentelemetry/instrumentation-dataloader';
import { DnsInstrumentation } from '@opentelemetry/instrumentation-dns';
import { ExpressInstrumentation } from '@opentelemetry/instrumentation-express';
import { GenericPoolInstrumentation } from '@opentelemetry/instrumentation-generic-pool';
import { GraphQLInstrumentation } from '@opentelemetry/instrumentation-graphql';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HapiInstrumentation } from '@opentelemetry/instrumentation-hapi';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { KafkaJsInstrumentation } from '@opentelemetry/instrumentation-kafkajs';
import { KnexInstrumentation } from '@opentelemetry/instrumentation-knex';
import { KoaInstrumentation } from '@opentelemetry/instrumentation-koa';
import { LruMemoizerInstrumentation } from '@opentelemetry/instrumentation-lru-memoizer';
import { MemcachedInstrumentation } from '@opentelemetry/instrumentation-memcached';
import { MongoDBInstrumentation } from '@opentelemetry/instrumentation-mongodb';
import { MongooseInstrumentation } from '@opentelemetry/instrumentation-mongoose';
import { MySQLInstrumentation } from '@opentelemetry/instrumentation-mysql';
import { MySQL2Instrumentation } from '@opentelemetry/instrumentation-mysql2';
import { NestInstrumentation } from '@opentelemetry/instrumentation-nestjs-core';
import { NetInstrumentation } from '@opentelemetry/instrumentation-net';
import { OpenAIInstrumentation } from '@opentelemetry/instrumentation-openai';
import { OracleInstrumentation } from '@opentelemetry/instrumentation-oracledb';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { PinoInstrumentation } from '@opentelemetry/instrumentation-pino';
import { RestifyInstrumentation } from '@opentelemetry/instrumentation-restify';
import { RouterInstrumentation } from '@opentelemetry/instrumentation-router';
import { SocketIoInstrumentation } from '@opentelemetry/instrumentation-socket.io';
import { TediousInstrumentation } from '@opentelemetry/instrumentation-tedious';
import { WinstonInstrumentation } from '@opentelemetry/instrumentation-winston';
import type { Env } from '../config.ts';
import { keepReqNext } from './expressReqNext.ts';
import { LazyInstrumentation } from './LazyInstrumentation.ts';
import { lazyInstrumentations } from './lazyInstrumentations.ts';
import { isProbePath } from './probePaths.ts';
import { isKitRequest, undiciStartSpanHook } from './undiciSpanHook.ts';

/** What the kit's settings of its instrumentations depend on. */
export interface InstrumentationSettings {
  /** The port `/metrics` is served on: its scrapes are not traced. */
  metricsPort: number | undefined;
  /** True when `OTEL_LOGS_EXPORTER` asks for OTLP log records. */
  logsRequested: boolean;
}

const prefix = '@opentelemetry/instrumentation-';

const classes: Record<string, new (config: InstrumentationConfig) => Instrumentation> = {
  amqplib: AmqplibInstrumentation,
  'aws-sdk': AwsInstrumentation,
  bunyan: BunyanInstrumentation,
  'cassandra-driver': CassandraDriverInstrumentation,
  connect: ConnectInstrumentation,
  cucumber: CucumberInstrumentation,
  dataloader: DataloaderInstrumentation,
  dns: DnsInstrumentation,
  express: ExpressInstrumentation,
  'generic-pool': GenericPoolInstrumentation,
  graphql: GraphQLInstrumentation,
  grpc: GrpcInstrumentation,
  hapi: HapiInstrumentation,
  ioredis: IORedisInstrumentation,
  kafkajs: KafkaJsInstrumentation,
  knex: KnexInstrumentation,
  koa: KoaInstrumentation,
  'lru-memoizer': LruMemoizerInstrumentation,
  memcached: MemcachedInstrumentation,
  mongodb: MongoDBInstrumentation,
  mongoose: MongooseInstrumentation,
  mysql2: MySQL2Instrumentation,
  mysql: MySQLInstrumentation,
  'nestjs-core': NestInstrumentation,
  net: NetInstrumentation,
  openai: OpenAIInstrumentation,
  oracledb: OracleInstrumentation,
  pg: PgInstrumentation,
  pino: PinoInstrumentation,
  restify: RestifyInstrumentation,
  router: RouterInstrumentation,
  'socket.io': SocketIoInstrumentation,
  tedious: TediousInstrumentation,
  winston: WinstonInstrumentation,
};

/** The names listed in `OTEL_NODE_ENABLED_INSTRUMENTATIONS` / `_DISABLED_`, without the package prefix. */
function listed(env: Env, name: string): string[] | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  return raw.split(',').map((s) => s.trim());
}

/** True when the env lists leave `name` on, given whether it is on by default (auto-instrumentations-node's rules). */
export function isInstrumentationOn(env: Env, name: string, onByDefault: boolean): boolean {
  if (listed(env, 'OTEL_NODE_DISABLED_INSTRUMENTATIONS')?.includes(name)) return false;
  const enabled = listed(env, 'OTEL_NODE_ENABLED_INSTRUMENTATIONS');
  return enabled === undefined ? onByDefault : enabled.includes(name);
}

/**
 * The layers of the kit's own Express middleware (`requestLogging.express()`,
 * `health.express()`): a span each on every request, beside the server span that already
 * covers them. Without them the Express service of `npm run bench -- server`
 * (BENCH_APP=express) went from 0.89 to 1.26 of the anchor's throughput at concurrency 8.
 */
const kitMiddlewareLayers = /^middleware - otelServiceKit(RequestLogging|Health)$/;

/**
 * The instrumentation set of `@opentelemetry/auto-instrumentations-node`, chosen with
 * `OTEL_NODE_ENABLED_INSTRUMENTATIONS` / `OTEL_NODE_DISABLED_INSTRUMENTATIONS` exactly as it
 * documents them (an unknown name is reported through `diag`), with the kit's settings:
 *
 * - http: probes and `/metrics` scrapes are not traced;
 * - undici: secrets redacted from `url.full`; InstrumentedClient's requests left to its own
 *   CLIENT spans;
 * - aws-sdk: no duplicate client span for the SDK's own HTTP call;
 * - pino: OTLP log records only when `OTEL_LOGS_EXPORTER` asks;
 * - express: `req.next` stays the `next` each middleware is handed (`keepReqNext`), and
 *   the kit's own middleware gets no span;
 * - host-metrics (off in the anchor): on, for process CPU and memory only, the series
 *   every Node team has from prom-client; `OTEL_NODE_DISABLED_INSTRUMENTATIONS=host-metrics`
 *   turns it off;
 * - router (on in the anchor): off, see below; `OTEL_NODE_ENABLED_INSTRUMENTATIONS` naming it
 *   turns it on.
 *
 * router is off unless named in OTEL_NODE_ENABLED_INSTRUMENTATIONS: Express 5 runs on the
 * router package, so every layer got a span from both (Express's own suite: 24,923 router
 * spans beside 12,933 express spans), and it throws on a response that is not an event
 * emitter (Express's Router tests with mock responses).
 *
 * Fastify 5 routes name the server span (`GET /users/:id`) whenever http is on: Fastify
 * publishes each matched route on a diagnostics channel, and the kit hands it to the http
 * instrumentation as Express's instrumentation does.
 */
export function kitInstrumentations(env: Env, settings: InstrumentationSettings): Instrumentation[] {
  const { metricsPort, logsRequested } = settings;
  const configs: Record<string, InstrumentationConfig & Record<string, unknown>> = {
    [`${prefix}http`]: {
      ignoreIncomingRequestHook: (req: IncomingMessage) =>
        (metricsPort !== undefined && req.socket?.localPort === metricsPort) || isProbePath(req.url),
    },
    [`${prefix}undici`]: { startSpanHook: undiciStartSpanHook, ignoreRequestHook: isKitRequest },
    [`${prefix}aws-sdk`]: { suppressInternalInstrumentation: true },
    [`${prefix}pino`]: { disableLogSending: !logsRequested },
    [`${prefix}express`]: { ignoreLayers: [kitMiddlewareLayers] },
    ...(isInstrumentationOn(env, 'host-metrics', true)
      ? { [`${prefix}host-metrics`]: { enabled: true, metricGroups: ['process.cpu', 'process.memory'] } }
      : {}),
  };
  // The instrumentations of npm packages are built by the kit, lazily; the library builds
  // the rest (Node's own modules, diagnostics-channel ones, runtime metrics) and checks the
  // names in the environment.
  const onByDefault = (name: string) => name !== 'router';
  const lazy: Instrumentation[] = [];
  const skip: Record<string, { enabled: false }> = {};
  for (const entry of lazyInstrumentations) {
    const full = `${prefix}${entry.name}`;
    skip[full] = { enabled: false };
    if (!isInstrumentationOn(env, entry.name, onByDefault(entry.name))) continue;
    const Class = classes[entry.name];
    if (Class === undefined) continue;
    const build = (config: InstrumentationConfig) => {
      const instrumentation = new Class(config);
      if (entry.name === 'express') keepReqNext(instrumentation);
      return instrumentation;
    };
    lazy.push(new LazyInstrumentation(full, entry.modules, build, configs[full]));
  }
  const eager = getNodeAutoInstrumentations({ ...configs, ...skip });
  if (isInstrumentationOn(env, 'http', true)) nameFastifyRoutes();
  return [...eager, ...lazy];
}

let fastifySubscribed = false;

/** Fastify's matched route template becomes the server span's `http.route` (and its name). */
function nameFastifyRoutes(): void {
  if (fastifySubscribed) return;
  fastifySubscribed = true;
  diagnosticsChannel.subscribe('tracing:fastify.request.handler:start', (message) => {
    const route = (message as { route?: { url?: unknown } }).route?.url;
    if (typeof route !== 'string') return;
    const metadata = getRPCMetadata(context.active());
    if (metadata?.type === RPCType.HTTP) metadata.route = route;
  });
}
