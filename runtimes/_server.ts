/**
 * What every adapter's `serve()` shares: the running {@linkcode Server}, the
 * listening options, and their checks.
 *
 * @module
 */

import { describeValue } from "../core/_describe.ts";
import { CloseCode } from "../core/close_code.ts";
import { UsageError } from "../core/errors.ts";
import type { ConnectionOptions } from "../plugins/hooks.ts";
import { ConnectionSet } from "./_registry.ts";
import { resolveConnectionOptions } from "./_options.ts";

/**
 * A running server, whatever the runtime and the path.
 *
 * @example
 * ```ts
 * import { type Server, serve } from "@duplex/ws";
 *
 * const server: Server = await serve({}, { port: 0 });
 * console.log(server.url, server.connections);
 * await server.close();
 * ```
 */
export interface Server {
  /** The port it listens on. */
  readonly port: number;
  /** The address it listens on. */
  readonly hostname: string;
  /** `ws://host:port` or `wss://host:port`. */
  readonly url: string;
  /** Number of live connections, handshakes in progress included. */
  readonly connections: number;
  /**
   * Stops accepting, closes every connection (default code 1001), and
   * resolves once every socket is closed; connections that do not answer are
   * destroyed after their close timeout.
   */
  close(code?: number, reason?: string): Promise<void>;
}

/**
 * A certificate and its private key, both PEM-encoded, to serve `wss://`.
 *
 * @example
 * ```ts
 * import type { TlsCertificate } from "@duplex/ws";
 *
 * const tls: TlsCertificate = { cert: "-----BEGIN CERTIFICATE-----\n…", key: "-----BEGIN PRIVATE KEY-----\n…" };
 * ```
 */
export interface TlsCertificate {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

/**
 * Options of every runtime's `serve()`: where to listen, TLS, and the
 * connection options (limits, subprotocols, timeouts).
 *
 * @example
 * ```ts
 * import type { ListenOptions } from "@duplex/ws";
 *
 * const options: ListenOptions = { port: 0, hostname: "127.0.0.1", protocols: ["chat.v1"] };
 * ```
 */
export interface ListenOptions extends ConnectionOptions {
  /** Port to listen on; 0 picks a free one. Default 8080. */
  port?: number;
  /** Address to listen on. Default `"127.0.0.1"`. */
  hostname?: string;
  /** Serve `wss://` with this certificate and key. */
  tls?: TlsCertificate;
}

/** Checks `port` and fills in the defaults. */
export function listenAddress(port: unknown = 8080, hostname: unknown = "127.0.0.1"): { port: number; hostname: string } {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: port must be an integer from 0 to 65535, got ${describeValue(port)}`);
  }
  if (typeof hostname !== "string" || hostname === "") {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: hostname must be a non-empty string, got ${describeValue(hostname)}`);
  }
  return { port, hostname };
}

/**
 * Splits a `serve()`'s options into where to listen, TLS, and the checked
 * connection options, with the server's empty connection set.
 *
 * @throws {UsageError} On a bad port, hostname or connection option.
 */
export function serveSetup<T>(options: ConnectionOptions & { port?: number; hostname?: string; tls?: T }): {
  port: number;
  hostname: string;
  tls: T | undefined;
  connection: Readonly<ConnectionOptions>;
  set: ConnectionSet;
} {
  const { port, hostname, tls, ...rest } = options;
  const connection = resolveConnectionOptions(rest);
  return { ...listenAddress(port, hostname), tls, connection, set: new ConnectionSet(connection) };
}

/** `ws://host:port`, with brackets around an IPv6 address. */
export function serverUrl(secure: boolean, hostname: string, port: number): string {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return `${secure ? "wss" : "ws"}://${host}:${port}`;
}

/**
 * Builds the {@linkcode Server} object: `close()` runs once, stops the
 * listener and shuts every connection down, and resolves when both are done.
 */
export function makeServer(
  address: { port: number; hostname: string; secure: boolean },
  set: ConnectionSet,
  stopListening: () => Promise<void>,
): Server {
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    hostname: address.hostname,
    url: serverUrl(address.secure, address.hostname, address.port),
    get connections() {
      return set.size;
    },
    close(code = CloseCode.GoingAway, reason = "Server shutting down") {
      closing ??= Promise.all([stopListening(), set.shutdown(code, reason)]).then(() => undefined);
      return closing;
    },
  };
}
