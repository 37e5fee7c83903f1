/**
 * The Node adapter's socket plumbing, shared by `node.ts` and `hono.ts`:
 * a `node:stream` socket as a pump {@linkcode Transport}.
 *
 * @module
 */

import * as buffer from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ConnectionOptions, Handler } from "../plugins/hooks.ts";
import { Pump, type Transport } from "./_pump.ts";
import type { ConnectionSet } from "./_registry.ts";
import { DEFAULT_HIGH_WATER_MARK } from "./_options.ts";
import { useNativeUtf8 } from "../core/_utf8.ts";
import { useAllocator } from "../core/_alloc.ts";

// Text delivered as bytes (textAs: "bytes") is validated by node:buffer's
// isUtf8 (simdutf; Node 18.14+, Deno and Bun have it too): about 3 µs per
// 64 KiB, against 17 µs for core's JavaScript scan. Same rule, RFC 3629.
if (typeof buffer.isUtf8 === "function") useNativeUtf8(buffer.isUtf8);

// The bytes core fills before anyone reads them (a frame joined from several
// reads, a header) come from node:buffer's allocUnsafe: not zeroed, and
// already off the JavaScript heap, where socket.write() wants them (a small
// Uint8Array would be moved off the heap on every write). Handed on as a
// plain Uint8Array view: the allocator is the process's, so on a runtime
// that runs this adapter beside another, that one's messages must not turn
// into Buffers (whose slice() and toString() differ).
useAllocator((size) => {
  const bytes = buffer.Buffer.allocUnsafe(size);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, size);
});

class NodeTransport implements Transport {
  readonly #socket: Duplex;
  readonly #highWaterMark: number;

  constructor(socket: Duplex, highWaterMark: number) {
    this.#socket = socket;
    this.#highWaterMark = highWaterMark;
  }

  // Full at the connection's own highWaterMark, not at the stream's (16 KiB
  // on Node 20, which one 64 KiB message always crosses): `socket.write()`
  // returning false still arms the stream's `drain`, so the drain the pump
  // waits for above its mark comes as it should.
  write(chunks: Uint8Array[]): boolean {
    const socket = this.#socket;
    if (chunks.length === 1) {
      if (socket.write(chunks[0]!)) return true;
    } else {
      socket.cork();
      for (const chunk of chunks) socket.write(chunk);
      socket.uncork();
    }
    return socket.writableLength < this.#highWaterMark;
  }

  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  get remoteAddress(): string {
    return (this.#socket as Socket).remoteAddress ?? "";
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  end(): void {
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

const kPump = Symbol("duplex.pump");

type PumpedSocket = Duplex & { [kPump]: Pump<any> };

// One set of listeners for every socket (the pump hangs off the socket), so a
// connection costs no closures.
function onSocketData(this: PumpedSocket, chunk: Uint8Array): void {
  this[kPump].onData(chunk);
}
function onSocketEnd(this: PumpedSocket): void {
  this[kPump].onEnd();
}
function onSocketDrain(this: PumpedSocket): void {
  this[kPump].onDrain();
}
function onSocketError(): void {
  // 'close' follows; the pump reports 1006 there.
}
function onSocketClose(this: PumpedSocket): void {
  this[kPump].onClosed();
}

/**
 * Runs a connection on a socket: the raw handshake (or, with `req`, the
 * handshake a `node:http` server already parsed) and then the frames.
 *
 * @example
 * ```ts ignore
 * run(socket, handler, options, set, req, head);
 * ```
 */
export function run<S>(
  socket: Duplex,
  handler: Handler<S>,
  options: ConnectionOptions,
  set: ConnectionSet,
  req?: IncomingMessage,
  head?: Uint8Array,
): void {
  const s = socket as Socket;
  s.setNoDelay?.(true);
  s.setTimeout?.(0);
  const pump = new Pump<S>(new NodeTransport(socket, options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK), handler, options, set);
  (socket as PumpedSocket)[kPump] = pump;
  socket.on("data", onSocketData);
  socket.on("end", onSocketEnd);
  socket.on("drain", onSocketDrain);
  socket.on("error", onSocketError);
  socket.on("close", onSocketClose);
  if (req === undefined) pump.start();
  else {
    pump.start(
      { method: req.method ?? "", url: req.url ?? "/", httpVersion: req.httpVersion, headers: req.headers },
      head,
    );
  }
}

