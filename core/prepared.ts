/**
 * A message framed once and sent to many connections: the frame's bytes
 * are made on first use and then shared by every connection it goes to
 * (fan-out, pub/sub). Send it with `Engine.sendPrepared` or a context's
 * `sendPrepared`.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { encodeFrame, encodeTextFrame, Opcode } from "./frame.ts";

/**
 * A message as it is sent: a string stays a string (text), any other bytes
 * become a `Uint8Array` over the same memory (binary).
 *
 * @param data A string, an `ArrayBuffer` or an `ArrayBufferView`.
 * @returns The string, or a `Uint8Array` view (not a copy).
 * @throws {UsageError} `ERR_INVALID_DATA` for anything else.
 *
 * @example
 * ```ts ignore
 * console.log(messageData(new Uint16Array([1])).byteLength); // 2
 * ```
 */
export function messageData(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === "string" || data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new UsageError("ERR_INVALID_DATA", "Invalid message: expected a string, an ArrayBuffer or an ArrayBufferView");
}

/**
 * One message, framed at most once for every recipient.
 *
 * @example
 * ```ts
 * import { Engine, PreparedMessage } from "@duplex/ws/core";
 *
 * const message = new PreparedMessage("tick");
 * declare const engines: Engine[]; // open connections
 * for (const engine of engines) engine.sendPrepared(message); // one frame, shared
 * ```
 */
export class PreparedMessage {
  /** The message: a string is sent as text, bytes as binary. */
  readonly data: string | Uint8Array;
  #frame: readonly Uint8Array[] | undefined;

  /**
   * Creates a prepared message; the frame is made on first use.
   *
   * @param data A string (text) or bytes (binary). Bytes are not copied: do
   *   not change them until every recipient's output has been written.
   * @throws {UsageError} `ERR_INVALID_DATA` for anything else.
   */
  constructor(data: string | ArrayBuffer | ArrayBufferView) {
    this.data = messageData(data);
  }

  /** Whether it is sent as a text frame. */
  get isText(): boolean {
    return typeof this.data === "string";
  }

  /** The server frame's chunks (unmasked, final), made on first use. */
  get frame(): readonly Uint8Array[] {
    this.#frame ??= typeof this.data === "string" ? encodeTextFrame(this.data) : encodeFrame(Opcode.Binary, this.data);
    return this.#frame;
  }

  /** The frame's size in bytes. */
  get frameBytes(): number {
    let total = 0;
    for (const chunk of this.frame) total += chunk.length;
    return total;
  }
}
