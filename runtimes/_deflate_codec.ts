/**
 * The permessage-deflate codec of one connection (RFC 7692): whole messages
 * in, whole messages out, over `node:zlib`'s raw deflate streams, which
 * behave the same on Node, Deno and Bun. Negotiation lives elsewhere; this
 * module only compresses and inflates with the parameters agreed on.
 *
 * The approach is `ws`'s (`lib/permessage-deflate.js`, `lib/limiter.js`):
 * write, flush with `Z_SYNC_FLUSH`, collect the `data` chunks, count inflated
 * bytes as they come and stop at the limit; all zlib work of the process
 * goes through one queue that caps how much runs at once.
 *
 * Runtime differences seen (Node 20.20, Deno 2.9.6, Bun 1.4.5), none of
 * which changes the result:
 * - on an inflate error, Deno calls the flush callback first (the stream
 *   already destroyed, `stream.errored` set), then emits `error`; Node and
 *   Bun only emit `error`. The flush callback checks `errored` first, and
 *   each call settles once.
 * - closing a stream while a flush is in flight calls the flush callback on
 *   all three; older Node did not (why `ws` resets instead). The call is
 *   settled by `close()` itself, so neither matters. Deno's zlib may finish
 *   a 4 MiB message before a 1 ms timer fires, where Node's has not.
 * - everything else checked is the same: `data` chunks are `Buffer`s of at
 *   most 16 KiB, closing a stream inside its `data` handler stops the
 *   inflation at once (each runtime checks `destroyed` after `push`), an
 *   empty message deflates to `00 00 00 ff ff`.
 *
 * @module
 */

import type { DeflateParams } from "../core/deflate.ts";
import { constants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from "node:zlib";
import { CloseCode } from "../core/close_code.ts";
import { ProtocolError, UsageError } from "../core/errors.ts";

export type { DeflateParams } from "../core/deflate.ts";

/**
 * Options of a {@linkcode DeflateCodec}.
 *
 * @example
 * ```ts
 * import { type CodecOptions, ZlibLimiter } from "./_deflate_codec.ts";
 *
 * const options: CodecOptions = { level: 1, memLevel: 7, limiter: new ZlibLimiter(4) };
 * ```
 */
export interface CodecOptions {
  /** Compression level, -1 (zlib's default, 6) to 9. Default -1, as in `ws`. */
  level?: number;
  /** zlib memory level of the deflater, 1–9. Default 8 (zlib's default, as in `ws`). */
  memLevel?: number;
  /** The queue that zlib work waits in. Default {@linkcode sharedLimiter}. */
  limiter?: ZlibLimiter;
}

/**
 * A FIFO queue of asynchronous jobs with at most `concurrency` of them
 * running at once. A job that throws or rejects still frees its slot.
 *
 * @example
 * ```ts
 * import { ZlibLimiter } from "./_deflate_codec.ts";
 *
 * const limiter = new ZlibLimiter(2);
 * const results = await Promise.all([1, 2, 3].map((n) => limiter.run(async () => n * 2)));
 * console.log(results, limiter.active); // [2, 4, 6] 0
 * ```
 */
export class ZlibLimiter {
  readonly #concurrency: number;
  readonly #waiting: (() => void)[] = [];
  #active = 0;

  /**
   * Creates a limiter.
   *
   * @param concurrency Most jobs running at once: a positive integer, or `Infinity`.
   * @throws {RangeError} When `concurrency` is not a positive integer or `Infinity`.
   */
  constructor(concurrency = 10) {
    if (!(Number.isInteger(concurrency) || concurrency === Infinity) || concurrency < 1) {
      throw new RangeError(`Concurrency must be a positive integer: ${concurrency}`);
    }
    this.#concurrency = concurrency;
  }

  /** Jobs running now. */
  get active(): number {
    return this.#active;
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }

  /**
   * Runs `job` once a slot is free, after the jobs queued before it.
   *
   * @typeParam T What the job resolves to.
   * @param job The work; its slot is held until the promise it returns settles.
   * @returns The job's result, or its error.
   */
  run<T>(job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.#active++;
        let result: Promise<T>;
        try {
          result = job();
        } catch (error) {
          result = Promise.reject(error);
        }
        result.then(
          (value) => {
            this.#release();
            resolve(value);
          },
          (error) => {
            this.#release();
            reject(error);
          },
        );
      };
      if (this.#active < this.#concurrency) start();
      else this.#waiting.push(start);
    });
  }

  #release(): void {
    this.#active--;
    this.#waiting.shift()?.();
  }
}

/**
 * The process-wide queue of zlib work: at most 10 jobs at once, as in `ws`.
 * zlib runs on the thread pool; unbounded, thousands of connections
 * compressing at once fragment memory badly (nodejs/node#8871).
 *
 * @example
 * ```ts
 * import { sharedLimiter } from "./_deflate_codec.ts";
 *
 * console.log(sharedLimiter.active, sharedLimiter.queued); // 0 0
 * ```
 */
export const sharedLimiter: ZlibLimiter = new ZlibLimiter(10);

/** What RFC 7692 §7.2.1 strips from the end of a message, and §7.2.2 appends back. */
const TRAILER = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** Size of the chunks zlib hands out (its default, named so the overshoot bound is explicit). */
const CHUNK_BYTES = 16 * 1024;

type Stream = DeflateRaw | InflateRaw;

/** One call waiting in a lane. */
interface Task {
  data: Uint8Array;
  maxBytes: number;
  resolve: (out: Uint8Array) => void;
  reject: (error: unknown) => void;
}

/** The call a lane is running: where its stream's events go. */
interface Running {
  data(chunk: Uint8Array): void;
  error(error: Error): void;
  settle(error: unknown, out?: Uint8Array): void;
}

/**
 * One direction of a codec: a zlib stream made on first use, the calls
 * waiting for it, run one at a time in call order.
 */
class Lane {
  readonly #open: () => Stream;
  readonly #inflate: boolean;
  readonly #takeover: boolean;
  readonly #limiter: ZlibLimiter;
  readonly #tasks: Task[] = [];
  #stream: Stream | null = null;
  #running: Running | null = null;
  #busy = false;
  #closed = false;
  /** Bytes the stream produced for the latest call, up to where it stopped. */
  produced = 0;

  constructor(open: () => Stream, inflate: boolean, takeover: boolean, limiter: ZlibLimiter) {
    this.#open = open;
    this.#inflate = inflate;
    this.#takeover = takeover;
    this.#limiter = limiter;
  }

  /** Whether a zlib stream is allocated now. */
  get open(): boolean {
    return this.#stream !== null;
  }

  add(data: Uint8Array, maxBytes: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(closedError());
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#tasks.push({ data, maxBytes, resolve, reject });
      this.#pump();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const error = closedError();
    this.#running?.settle(error);
    for (const task of this.#tasks.splice(0)) task.reject(error);
    this.#drop();
  }

  #pump(): void {
    if (this.#busy || this.#tasks.length === 0) return;
    this.#busy = true;
    const task = this.#tasks.shift()!;
    // A lane closed while its task waited for a slot gives the slot straight back.
    void this.#limiter.run(() => this.#closed ? Promise.resolve() : this.#process(task)).then(() => {
      this.#busy = false;
      this.#pump();
    });
  }

  /** Runs one task; resolves (never rejects) once it is settled, freeing the limiter slot. */
  #process(task: Task): Promise<void> {
    return new Promise<void>((done) => {
      let stream: Stream;
      try {
        stream = this.#stream ?? this.#make();
      } catch (error) {
        task.reject(error);
        done();
        return;
      }
      const chunks: Uint8Array[] = [];
      let total = 0;
      let settled = false;
      this.produced = 0;
      const running: Running = {
        data: (chunk) => {
          total += chunk.length;
          this.produced = total;
          if (total > task.maxBytes) {
            // Closing inside the `data` handler stops zlib before the next
            // chunk on all three runtimes: the bomb is never inflated.
            running.settle(new ProtocolError(
              "WS_ERR_MESSAGE_TOO_BIG",
              CloseCode.MessageTooBig,
              `Message too big: over the limit of ${task.maxBytes} bytes once inflated`,
            ));
          } else {
            chunks.push(chunk);
          }
        },
        error: (error) => {
          running.settle(this.#inflate
            ? new ProtocolError("WS_ERR_INFLATE", CloseCode.InvalidPayload, `Invalid compressed data: ${error.message}`)
            : error);
        },
        settle: (error, out) => {
          if (settled) return;
          settled = true;
          this.#running = null;
          if (error !== null || !this.#takeover) this.#drop();
          if (error === null) task.resolve(out!);
          else task.reject(error);
          done();
        },
      };
      this.#running = running;
      try {
        stream.write(task.data);
        if (this.#inflate) stream.write(TRAILER);
        stream.flush(constants.Z_SYNC_FLUSH, () => {
          // Deno calls back before it emits `error`, on a destroyed stream: its error decides.
          if (stream.errored) running.error(stream.errored);
          else if (stream.destroyed) running.settle(closedError());
          // A sync flush always ends with 00 00 ff ff: a compressed message drops it (§7.2.1).
          else running.settle(null, join(chunks, this.#inflate ? total : Math.max(0, total - TRAILER.length)));
        });
      } catch (error) {
        running.settle(error);
      }
    });
  }

  #make(): Stream {
    const stream = this.#open();
    // Listeners for the stream's whole life, so that no event, even a late
    // one after the call settled, is unhandled.
    stream.on("data", (chunk: Uint8Array) => {
      if (this.#stream === stream) this.#running?.data(chunk);
    });
    stream.on("error", (error: Error) => {
      if (this.#stream === stream) this.#running?.error(error);
    });
    this.#stream = stream;
    return stream;
  }

  /** Frees the stream; the next call makes a fresh one. */
  #drop(): void {
    const stream = this.#stream;
    if (stream === null) return;
    this.#stream = null;
    stream.close();
  }
}

function closedError(): UsageError {
  return new UsageError("ERR_CODEC_CLOSED", "Deflate codec is closed");
}

/** Copies the first `length` bytes of `chunks` into one exact-size array (a chunk is a view of a 16 KiB buffer). */
function join(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    if (at >= length) break;
    const part = chunk.length <= length - at ? chunk : chunk.subarray(0, length - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}: ${value}`);
  }
}

/**
 * Compresses and inflates the messages of one connection. Each direction
 * runs one call at a time, in call order, through the limiter. zlib streams
 * are made on first use; with no context takeover they are freed after each
 * message (measured on all three runtimes: a deflater holds about 220 KiB,
 * an inflater 20–50 KiB, and making a fresh one costs 0–30 µs a message),
 * otherwise kept for the next message.
 *
 * A call holds its `data` until it settles: do not change it meanwhile.
 *
 * @example
 * ```ts
 * import { DeflateCodec } from "./_deflate_codec.ts";
 *
 * const params = { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
 * const server = new DeflateCodec(params);
 * const packed = await server.compress(new TextEncoder().encode("hello"));
 * const back = await server.decompress(packed, 1024);
 * console.log(new TextDecoder().decode(back)); // "hello"
 * server.close();
 * ```
 */
export class DeflateCodec {
  readonly #deflate: Lane;
  readonly #inflate: Lane;

  /**
   * Creates a codec; it allocates nothing until the first call.
   *
   * @param params What negotiation agreed on.
   * @param options Compression level, memory level and limiter.
   * @throws {RangeError} When a window is not 9–15, the level not -1–9 or the memory level not 1–9.
   */
  constructor(params: DeflateParams, options: CodecOptions = {}) {
    const level = options.level ?? constants.Z_DEFAULT_COMPRESSION;
    const memLevel = options.memLevel ?? constants.Z_DEFAULT_MEMLEVEL;
    const limiter = options.limiter ?? sharedLimiter;
    // zlib cannot make a raw deflate stream with an 8-bit window (it makes a 9-bit one).
    checkRange("serverMaxWindowBits", params.serverMaxWindowBits, 9, 15);
    checkRange("clientMaxWindowBits", params.clientMaxWindowBits, 9, 15);
    checkRange("level", level, -1, 9);
    checkRange("memLevel", memLevel, 1, 9);
    const { serverMaxWindowBits, clientMaxWindowBits } = params;
    this.#deflate = new Lane(
      () => createDeflateRaw({ level, memLevel, windowBits: serverMaxWindowBits, chunkSize: CHUNK_BYTES }),
      false,
      !params.serverNoContextTakeover,
      limiter,
    );
    this.#inflate = new Lane(
      () => createInflateRaw({ windowBits: clientMaxWindowBits, chunkSize: CHUNK_BYTES }),
      true,
      !params.clientNoContextTakeover,
      limiter,
    );
  }

  /**
   * Bytes the inflater produced for the latest {@linkcode decompress} call,
   * counted up to where it stopped: for a message over the limit, at most
   * `maxBytes` plus one 16 KiB chunk.
   */
  get inflatedBytes(): number {
    return this.#inflate.produced;
  }

  /** Whether a deflater and an inflater are allocated now (they are made on first use and freed without context takeover). */
  get streams(): { deflate: boolean; inflate: boolean } {
    return { deflate: this.#deflate.open, inflate: this.#inflate.open };
  }

  /**
   * Compresses one whole message: deflate, sync flush, and the trailing
   * `00 00 ff ff` stripped (RFC 7692 §7.2.1).
   *
   * @param data The message payload.
   * @returns The payload of the compressed message (to send with RSV1 set).
   * @throws {UsageError} `ERR_CODEC_CLOSED` (rejected) when the codec is or gets closed first.
   * @throws {Error} (rejected) zlib's own error if the deflater fails (out of memory).
   */
  compress(data: Uint8Array): Promise<Uint8Array> {
    return this.#deflate.add(data, Infinity);
  }

  /**
   * Inflates one whole compressed message (its fragments' payloads joined):
   * `00 00 ff ff` appended, inflate, sync flush (RFC 7692 §7.2.2). Stops as
   * soon as the output passes `maxBytes`, without inflating the rest.
   *
   * After a rejection with a {@linkcode ProtocolError}, close the connection
   * with its `closeCode`: with context takeover, the stream is lost.
   *
   * @param data The compressed payload.
   * @param maxBytes Most bytes the message may inflate to.
   * @returns The message payload.
   * @throws {ProtocolError} (rejected) `WS_ERR_MESSAGE_TOO_BIG`, close code 1009, over `maxBytes`;
   * `WS_ERR_INFLATE`, close code 1007, for data that is not valid deflate.
   * @throws {UsageError} (rejected) `ERR_CODEC_CLOSED` when the codec is or gets closed first.
   * @throws {RangeError} When `maxBytes` is negative or not a number.
   */
  decompress(data: Uint8Array, maxBytes: number): Promise<Uint8Array> {
    if (typeof maxBytes !== "number" || !(maxBytes >= 0)) {
      throw new RangeError(`maxBytes must be a number of bytes: ${maxBytes}`);
    }
    return this.#inflate.add(data, maxBytes);
  }

  /**
   * Frees both zlib streams, at once. The calls under way and waiting
   * reject with `ERR_CODEC_CLOSED`, and so do later ones. Idempotent.
   */
  close(): void {
    this.#deflate.close();
    this.#inflate.close();
  }
}
