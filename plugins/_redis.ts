/**
 * What both Redis integrations (the Pub/Sub backplane and the Streams log)
 * share: handing bytes to the client, and closing it (`QUIT`, or a
 * disconnect when it fails or takes too long).
 *
 * @module
 */

type BufferFrom = (buffer: ArrayBufferLike, byteOffset: number, length: number) => Uint8Array;
const NodeBuffer = (globalThis as unknown as { Buffer?: { from: BufferFrom } }).Buffer;

/**
 * Bytes as the client sends them: a `Buffer` over the same memory where
 * there is one (ioredis sends any other object as its `String()`).
 */
export const forClient: (bytes: Uint8Array) => Uint8Array = NodeBuffer === undefined
  ? (bytes) => bytes
  : (bytes) => NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** How long `QUIT` may take before the client is disconnected. */
const QUIT_TIMEOUT_MS = 2000;

/** The part of a client that closing it uses. */
export interface Quittable {
  readonly status?: string;
  quit(): Promise<unknown>;
  disconnect(): void;
}

/**
 * Quits a client, or disconnects it when QUIT fails or takes too long.
 *
 * @param client The client; one that has already ended is left as it is.
 * @returns Once the client is closed.
 */
export function quit(client: Quittable): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      client.disconnect();
      resolve();
    }, QUIT_TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    if (client.status === "end") return done();
    let quitting;
    try {
      quitting = client.quit();
    } catch {
      client.disconnect();
      return done();
    }
    quitting.then(done, () => {
      client.disconnect();
      done();
    });
  });
}
