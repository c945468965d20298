import type { Readable } from 'node:stream';

/**
 * Count the bytes `stream` hands to its reader, as it hands them: `onBytes` gets the
 * byte length of every `data` chunk. Returns a function that stops counting.
 *
 * Counting happens where a Readable emits `data`, which it does for every chunk that
 * leaves it whoever reads (`pipe`, `for await`, `read()`, `Readable.toWeb`, the AWS
 * SDK's `transformToString`/`transformToByteArray` mixin). So the stream the SDK and the
 * caller hold stays the same object (the SDK's mixin methods, `instanceof` checks and
 * its length detection of file streams keep working), there is no extra stream hop, and
 * a body read late, or never, is counted exactly once, or not at all.
 *
 * Chunks decoded to strings by `setEncoding` are counted in bytes of that encoding.
 */
export function countReadBytes(stream: Readable, onBytes: (bytes: number) => void): () => void {
  const hadOwn = Object.hasOwn(stream, 'emit');
  const previous = stream.emit;
  const counting = function (this: Readable, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'data') {
      try {
        onBytes(chunkBytes(args[0], this.readableEncoding));
      } catch {
        // Telemetry never breaks the caller's stream.
      }
    }
    return Reflect.apply(previous, this, [event, ...args]) as boolean;
  };
  stream.emit = counting as Readable['emit'];
  return () => {
    // Someone wrapped emit after us: leave their wrapper (and so ours) in place.
    if (stream.emit !== counting) return;
    if (hadOwn) stream.emit = previous;
    else delete (stream as { emit?: unknown }).emit;
  };
}

function chunkBytes(chunk: unknown, encoding: BufferEncoding | null): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, encoding ?? 'utf8');
  if (ArrayBuffer.isView(chunk)) return chunk.byteLength;
  return 0;
}
