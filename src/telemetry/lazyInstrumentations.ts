/**
 * The instrumentations of the auto-instrumentation set that patch an npm package (or a
 * built-in module the kit itself does not load: dns, net), with the
 * module names each one patches (its module definitions, checked against the real ones by
 * test/instrumentations.test.ts). The preload loads each one's code only when the app
 * first loads one of those modules (`LazyInstrumentation`); the build (.ci/build-preload.ts)
 * defers their packages' evaluation until then.
 */
export const lazyInstrumentations: readonly LazyEntry[] = Object.freeze([
  { name: 'amqplib', className: 'AmqplibInstrumentation', modules: ['amqplib'] },
  {
    name: 'aws-sdk',
    className: 'AwsInstrumentation',
    modules: [
      '@aws-sdk/middleware-stack',
      '@smithy/middleware-stack',
      '@smithy/core',
      '@aws-sdk/smithy-client',
      '@smithy/smithy-client',
    ],
  },
  { name: 'bunyan', className: 'BunyanInstrumentation', modules: ['bunyan'] },
  { name: 'cassandra-driver', className: 'CassandraDriverInstrumentation', modules: ['cassandra-driver'] },
  { name: 'connect', className: 'ConnectInstrumentation', modules: ['connect'] },
  { name: 'cucumber', className: 'CucumberInstrumentation', modules: ['@cucumber/cucumber'] },
  { name: 'dataloader', className: 'DataloaderInstrumentation', modules: ['dataloader'] },
  { name: 'dns', className: 'DnsInstrumentation', modules: ['dns', 'dns/promises'] },
  { name: 'express', className: 'ExpressInstrumentation', modules: ['express'] },
  { name: 'generic-pool', className: 'GenericPoolInstrumentation', modules: ['generic-pool'] },
  { name: 'graphql', className: 'GraphQLInstrumentation', modules: ['graphql'] },
  { name: 'grpc', className: 'GrpcInstrumentation', modules: ['@grpc/grpc-js'] },
  { name: 'hapi', className: 'HapiInstrumentation', modules: ['@hapi/hapi'] },
  { name: 'ioredis', className: 'IORedisInstrumentation', modules: ['ioredis'] },
  { name: 'kafkajs', className: 'KafkaJsInstrumentation', modules: ['kafkajs'] },
  { name: 'knex', className: 'KnexInstrumentation', modules: ['knex'] },
  { name: 'koa', className: 'KoaInstrumentation', modules: ['koa'] },
  { name: 'lru-memoizer', className: 'LruMemoizerInstrumentation', modules: ['lru-memoizer'] },
  { name: 'memcached', className: 'MemcachedInstrumentation', modules: ['memcached'] },
  { name: 'mongodb', className: 'MongoDBInstrumentation', modules: ['mongodb'] },
  { name: 'mongoose', className: 'MongooseInstrumentation', modules: ['mongoose'] },
  { name: 'mysql2', className: 'MySQL2Instrumentation', modules: ['mysql2'] },
  { name: 'mysql', className: 'MySQLInstrumentation', modules: ['mysql'] },
  { name: 'nestjs-core', className: 'NestInstrumentation', modules: ['@nestjs/core'] },
  { name: 'net', className: 'NetInstrumentation', modules: ['net'] },
  { name: 'openai', className: 'OpenAIInstrumentation', modules: ['openai'] },
  { name: 'oracledb', className: 'OracleInstrumentation', modules: ['oracledb'] },
  { name: 'pg', className: 'PgInstrumentation', modules: ['pg', 'pg-pool'] },
  { name: 'pino', className: 'PinoInstrumentation', modules: ['pino'] },
  { name: 'restify', className: 'RestifyInstrumentation', modules: ['restify'] },
  { name: 'router', className: 'RouterInstrumentation', modules: ['router'] },
  { name: 'socket.io', className: 'SocketIoInstrumentation', modules: ['socket.io'] },
  { name: 'tedious', className: 'TediousInstrumentation', modules: ['tedious'] },
  { name: 'winston', className: 'WinstonInstrumentation', modules: ['winston'] },
]);

/** One lazily loaded instrumentation: its short name (`OTEL_NODE_ENABLED_INSTRUMENTATIONS`), class and modules. */
export interface LazyEntry {
  readonly name: string;
  readonly className: string;
  readonly modules: readonly string[];
}
