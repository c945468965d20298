import { connect } from 'node:net';
import type { Readable } from 'node:stream';
import { request } from 'undici';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One request on a connection of its own, closed after the answer (`reset`): leaves no
 * idle keep-alive socket behind to hold a server's graceful shutdown.
 */
export async function oneShot(
  url: string,
  options: {
    method?: 'GET' | 'POST' | 'HEAD';
    headers?: Record<string, string>;
    body?: string | Readable;
  } = {},
): Promise<Answer> {
  const res = await request(url, { ...options, reset: true });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** `oneShot` with the body parsed as JSON. */
export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const a = await oneShot(url);
  return { status: a.status, body: JSON.parse(a.body) as Record<string, unknown> };
}

/**
 * Send `head` (request line and header lines, CRLF-separated, without the blank line)
 * byte for byte, with `Connection: close`, and parse the answer's status and headers.
 * For headers no well-behaved client would send (CR/LF, non-ASCII, kilobytes).
 */
export function rawRequest(
  port: number,
  head: string | Buffer,
): Promise<{ status: number; headers: Record<string, string>; raw: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const [statusLine = '', ...lines] = raw.split('\r\n\r\n')[0]?.split('\r\n') ?? [];
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, raw });
    });
    const bytes = Buffer.isBuffer(head) ? head : Buffer.from(head, 'latin1');
    socket.end(Buffer.concat([bytes, Buffer.from('\r\nConnection: close\r\n\r\n', 'latin1')]));
  });
}

/** Whether a TCP connection to `port` is accepted (`connected`) or refused. */
export function tryConnect(port: number): Promise<'connected' | 'refused'> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') resolve('refused');
      else reject(e);
    });
  });
}

export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
