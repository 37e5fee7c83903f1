/**
 * permessage-deflate for the pump: the server's resolved options, and one
 * connection's compression state. Outgoing messages keep the order of
 * `send()`: once one waits for zlib, every later one (compressed or not)
 * and the close frame wait behind it.
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import { checkDeflateNegotiation, type DeflateAgreement, type DeflateParams, negotiateDeflate } from "../core/deflate.ts";
import { UsageError } from "../core/errors.ts";
import type { ExtensionOffer } from "../core/handshake_offers.ts";
import { type CodecOptions, DeflateCodec, sharedLimiter, ZlibLimiter } from "./_deflate_codec.ts";
import type { ConnectionOptions, PerMessageDeflateOptions } from "../plugins/hooks.ts";

/** Default `threshold`: smaller messages are sent as they are, with or without context takeover. */
export const DEFAULT_DEFLATE_THRESHOLD = 1024;

/**
 * A server's permessage-deflate settings, checked once.
 *
 * @example
 * ```ts
 * import { deflateConfig } from "./_deflate.ts";
 *
 * const config = deflateConfig({ perMessageDeflate: { threshold: 64 } });
 * console.log(config?.threshold); // 64
 * ```
 */
export class DeflateConfig {
  /** Messages shorter than this are sent uncompressed. */
  readonly threshold: number;
  readonly #negotiation: PerMessageDeflateOptions;
  readonly #codec: CodecOptions;

  /**
   * @param options The server's options.
   * @throws {UsageError} `ERR_INVALID_OPTION` on a bad option.
   */
  constructor(options: PerMessageDeflateOptions) {
    if (typeof options !== "object" || options === null) {
      throw new UsageError("ERR_INVALID_OPTION", "Invalid option: perMessageDeflate must be a boolean or an object");
    }
    checkDeflateNegotiation(options);
    const threshold = options.threshold ?? DEFAULT_DEFLATE_THRESHOLD;
    integer("threshold", threshold, 0, Number.MAX_SAFE_INTEGER);
    const level = options.level ?? -1;
    integer("level", level, -1, 9);
    const memLevel = options.memLevel ?? 8;
    integer("memLevel", memLevel, 1, 9);
    let limiter = sharedLimiter;
    if (options.concurrency !== undefined) {
      integer("concurrency", options.concurrency, 1, Number.MAX_SAFE_INTEGER);
      limiter = new ZlibLimiter(options.concurrency);
    }
    this.threshold = threshold;
    this.#negotiation = options;
    this.#codec = { level, memLevel, limiter };
  }

  /** Accepts one of the client's offers, or none. */
  negotiate(offers: readonly ExtensionOffer[]): DeflateAgreement | undefined {
    return offers.length === 0 ? undefined : negotiateDeflate(offers, this.#negotiation);
  }

  /** A connection's compression, for agreed parameters. */
  open(params: DeflateParams, onError: (error: unknown) => void): Compression {
    return new Compression(new DeflateCodec(params, this.#codec), this.threshold, onError);
  }
}

function integer(name: string, value: unknown, min: number, max: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(
      "ERR_INVALID_OPTION",
      `Invalid option: perMessageDeflate.${name} must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`}, got ${describeValue(value)}`,
    );
  }
}

const configs = new WeakMap<object, DeflateConfig | null>();

/**
 * The permessage-deflate settings of a server's options, or `undefined`
 * when it is off. Checked once per options object.
 *
 * @param options The server's (resolved) options.
 * @returns The settings, or `undefined`.
 * @throws {UsageError} `ERR_INVALID_OPTION` on a bad `perMessageDeflate`.
 */
export function deflateConfig(options: Readonly<ConnectionOptions>): DeflateConfig | undefined {
  const option = options.perMessageDeflate;
  if (option === undefined || option === false) return undefined;
  const cached = configs.get(options);
  if (cached !== undefined) return cached ?? undefined;
  const config = option === true ? new DeflateConfig({}) : new DeflateConfig(option);
  configs.set(options, config);
  return config;
}

/**
 * One connection's compression: the codec, the threshold, and the queue of
 * outgoing work that keeps messages in order while zlib runs.
 */
export class Compression {
  /** Messages shorter than this are sent uncompressed. */
  readonly threshold: number;
  /** Messages waiting in the queue. */
  pending = 0;
  /** Their bytes, before compression. */
  pendingBytes = 0;
  readonly #codec: DeflateCodec;
  readonly #onError: (error: unknown) => void;
  #tail: Promise<void> | undefined;
  #idle: (() => void) | undefined;

  /**
   * @param codec The zlib codec.
   * @param threshold The size below which messages go uncompressed.
   * @param onError Called when compressing fails (not when the codec was closed).
   */
  constructor(codec: DeflateCodec, threshold: number, onError: (error: unknown) => void) {
    this.#codec = codec;
    this.threshold = threshold;
    this.#onError = onError;
  }

  /** Compresses one outgoing message. */
  deflate(data: Uint8Array): Promise<Uint8Array> {
    return this.#codec.compress(data);
  }

  /** Inflates one incoming message, failing with 1009 past `maxBytes`. */
  inflate(data: Uint8Array, maxBytes: number): Promise<Uint8Array> {
    return this.#codec.decompress(data, maxBytes);
  }

  /**
   * Runs `job` once every job queued before it has run.
   *
   * @param bytes The message's size, counted in `pendingBytes` meanwhile.
   * @param job Compresses and queues the frame (or just queues it).
   */
  enqueue(bytes: number, job: () => Promise<void> | void): void {
    this.pending++;
    this.pendingBytes += bytes;
    const done = (): void => {
      this.pending--;
      this.pendingBytes -= bytes;
      if (this.pending === 0) {
        this.#tail = undefined;
        this.#idle?.();
      }
    };
    const tail = this.#tail ?? Promise.resolve();
    this.#tail = tail.then(job).then(done, (error) => {
      done();
      if (!(error instanceof UsageError && error.code === "ERR_CODEC_CLOSED")) this.#onError(error);
    });
  }

  /** Calls `fn` each time the queue empties. */
  onIdle(fn: () => void): void {
    this.#idle = fn;
  }

  /** Frees zlib's memory; queued work is dropped. */
  close(): void {
    this.#codec.close();
  }
}
