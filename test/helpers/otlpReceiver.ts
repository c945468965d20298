import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A span as the receiver got it, the same shape whether it came as protobuf or JSON. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  /** The span status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  scope: string;
  resource: Record<string, unknown>;
  /** `application/x-protobuf` or `application/json`. */
  contentType: string;
}

export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;

/** The DNS instrumentation (on by default, as in auto-instrumentations-node) makes a CLIENT span per lookup. */
export const dnsScope = '@opentelemetry/instrumentation-dns';

/** A CLIENT span of a request (HTTP, S3, a database), not of a DNS lookup. */
export function isRequestSpan(span: ReceivedSpan): boolean {
  return span.kind === SpanKind.CLIENT && span.scope !== dnsScope;
}

/**
 * A loopback OTLP/HTTP receiver: accepts `/v1/traces` (and ignores `/v1/metrics`,
 * `/v1/logs`), decoding protobuf and JSON bodies into plain spans.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly requests: { path: string; contentType: string }[] = [];
  #server: Server;
  #waiters: (() => void)[] = [];

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<OtlpReceiver> {
    const server = createServer();
    const receiver = new OtlpReceiver(server);
    server.on('request', (req, res) => {
      void receiver.#handle(req).then(
        () => {
          res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/json' });
          res.end(req.headers['content-type']?.includes('json') ? '{}' : '');
        },
        (error: unknown) => {
          res.writeHead(400);
          res.end(String(error));
        },
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return receiver;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The base endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async #handle(req: IncomingMessage): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const contentType = String(req.headers['content-type'] ?? '');
    this.requests.push({ path: req.url ?? '', contentType });
    if (req.url !== '/v1/traces') return;
    const spans = contentType.includes('json') ? decodeJsonTraces(body) : decodeProtoTraces(body);
    for (const span of spans) this.spans.push({ ...span, contentType });
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolve once `predicate` holds over the spans received so far; reject after `timeoutMs`. */
  async waitFor(predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs = 10_000): Promise<ReceivedSpan[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.spans)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `OTLP receiver: condition not met in ${timeoutMs} ms; got ${this.spans.map((s) => s.name).join(', ')}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.spans;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }
}

// --- protobuf: just enough of the wire format for ExportTraceServiceRequest ----------

type Field = { no: number; wire: number; value: bigint | Uint8Array };

function readVarint(buf: Uint8Array, pos: { i: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[pos.i++];
    if (byte === undefined) throw new Error('protobuf: truncated varint');
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return result;
    shift += 7n;
  }
}

function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  const pos = { i: 0 };
  while (pos.i < buf.length) {
    const key = Number(readVarint(buf, pos));
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, value: readVarint(buf, pos) });
    else if (wire === 1) {
      out.push({ no, wire, value: buf.subarray(pos.i, pos.i + 8) });
      pos.i += 8;
    } else if (wire === 2) {
      const len = Number(readVarint(buf, pos));
      out.push({ no, wire, value: buf.subarray(pos.i, pos.i + len) });
      pos.i += len;
    } else if (wire === 5) {
      out.push({ no, wire, value: buf.subarray(pos.i, pos.i + 4) });
      pos.i += 4;
    } else throw new Error(`protobuf: unsupported wire type ${wire}`);
  }
  return out;
}

const bytesOf = (fs: Field[], no: number): Uint8Array[] =>
  fs.filter((f) => f.no === no && f.value instanceof Uint8Array).map((f) => f.value as Uint8Array);
const text = (b: Uint8Array | undefined) => (b === undefined ? '' : Buffer.from(b).toString('utf8'));
const hex = (b: Uint8Array | undefined) => (b === undefined ? '' : Buffer.from(b).toString('hex'));

function anyValue(buf: Uint8Array): unknown {
  const [f] = fields(buf);
  if (f === undefined) return undefined;
  switch (f.no) {
    case 1:
      return text(f.value as Uint8Array);
    case 2:
      return f.value === 1n;
    case 3:
      return Number(BigInt.asIntN(64, f.value as bigint));
    case 4:
      return Buffer.from(f.value as Uint8Array).readDoubleLE(0);
    case 5:
      return bytesOf(fields(f.value as Uint8Array), 1).map(anyValue);
    default:
      return hex(f.value as Uint8Array);
  }
}

function protoAttributes(fs: Field[], no: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of bytesOf(fs, no)) {
    const kvf = fields(kv);
    const value = bytesOf(kvf, 2)[0];
    out[text(bytesOf(kvf, 1)[0])] = value === undefined ? undefined : anyValue(value);
  }
  return out;
}

/** `Status.code` (field 3) of a span's `status` (field 15); 0 when absent. */
function statusCodeOf(status: Uint8Array | undefined): number {
  if (status === undefined) return 0;
  return Number(fields(status).find((x) => x.no === 3)?.value ?? 0n);
}

function decodeProtoTraces(body: Uint8Array): Omit<ReceivedSpan, 'contentType'>[] {
  const spans: Omit<ReceivedSpan, 'contentType'>[] = [];
  for (const rs of bytesOf(fields(body), 1)) {
    const rsf = fields(rs);
    const resourceBuf = bytesOf(rsf, 1)[0];
    const resource = resourceBuf === undefined ? {} : protoAttributes(fields(resourceBuf), 1);
    for (const ss of bytesOf(rsf, 2)) {
      const ssf = fields(ss);
      const scopeBuf = bytesOf(ssf, 1)[0];
      const scope = scopeBuf === undefined ? '' : text(bytesOf(fields(scopeBuf), 1)[0]);
      for (const sp of bytesOf(ssf, 2)) {
        const f = fields(sp);
        spans.push({
          traceId: hex(bytesOf(f, 1)[0]),
          spanId: hex(bytesOf(f, 2)[0]),
          parentSpanId: hex(bytesOf(f, 4)[0]),
          name: text(bytesOf(f, 5)[0]),
          kind: Number(f.find((x) => x.no === 6)?.value ?? 0n),
          attributes: protoAttributes(f, 9),
          events: bytesOf(f, 11).map((ev) => {
            const ef = fields(ev);
            return { name: text(bytesOf(ef, 2)[0]), attributes: protoAttributes(ef, 3) };
          }),
          statusCode: statusCodeOf(bytesOf(f, 15)[0]),
          scope,
          resource,
        });
      }
    }
  }
  return spans;
}

// --- JSON ---------------------------------------------------------------------------

type JsonKv = { key: string; value?: Record<string, unknown> };

function jsonValue(v: Record<string, unknown> | undefined): unknown {
  if (v === undefined) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('arrayValue' in v) {
    const values = (v.arrayValue as { values?: Record<string, unknown>[] }).values ?? [];
    return values.map(jsonValue);
  }
  return undefined;
}

function jsonAttributes(list: JsonKv[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = jsonValue(kv.value);
  return out;
}

function decodeJsonTraces(body: Buffer): Omit<ReceivedSpan, 'contentType'>[] {
  const doc = JSON.parse(body.toString('utf8')) as {
    resourceSpans?: {
      resource?: { attributes?: JsonKv[] };
      scopeSpans?: {
        scope?: { name?: string };
        spans?: {
          traceId: string;
          spanId: string;
          parentSpanId?: string;
          name: string;
          kind: number;
          attributes?: JsonKv[];
          events?: { name: string; attributes?: JsonKv[] }[];
          status?: { code?: number };
        }[];
      }[];
    }[];
  };
  const spans: Omit<ReceivedSpan, 'contentType'>[] = [];
  for (const rs of doc.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const sp of ss.spans ?? []) {
        spans.push({
          traceId: sp.traceId,
          spanId: sp.spanId,
          parentSpanId: sp.parentSpanId ?? '',
          name: sp.name,
          kind: sp.kind,
          attributes: jsonAttributes(sp.attributes),
          events: (sp.events ?? []).map((e) => ({ name: e.name, attributes: jsonAttributes(e.attributes) })),
          statusCode: sp.status?.code ?? 0,
          scope: ss.scope?.name ?? '',
          resource,
        });
      }
    }
  }
  return spans;
}
