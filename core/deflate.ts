/**
 * permessage-deflate negotiation (RFC 7692 §5 and §7.1), server side: which
 * of the client's offers to accept, with which parameters, and the
 * `Sec-WebSocket-Extensions` answer. Pure: the compression itself lives
 * outside the core.
 *
 * @module
 */

import { describeValue } from "./_describe.ts";
import { UsageError } from "./errors.ts";
import type { ExtensionOffer } from "./handshake_offers.ts";

/** The extension's token in `Sec-WebSocket-Extensions`. */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/**
 * What the server is willing to agree to. Every field is optional; the
 * defaults are RFC 7692's (context takeover both ways, 15-bit windows).
 *
 * @example
 * ```ts
 * import type { DeflateNegotiation } from "@duplex/ws/core";
 *
 * // Less memory per connection: no shared context, smaller windows.
 * const options: DeflateNegotiation = { serverNoContextTakeover: true, serverMaxWindowBits: 10 };
 * ```
 */
export interface DeflateNegotiation {
  /** Reset the server's compressor after every message (answers `server_no_context_takeover`). Default `false`. */
  serverNoContextTakeover?: boolean;
  /** Ask the client to reset its compressor after every message (answers `client_no_context_takeover`). Default `false`. */
  clientNoContextTakeover?: boolean;
  /** The largest LZ77 window the server compresses with, 9–15. Default 15. */
  serverMaxWindowBits?: number;
  /**
   * The largest window the client may compress with, 9–15, so that the
   * server's decompressor needs less memory. Only a client that offers
   * `client_max_window_bits` can be held to it; its other offers are then
   * declined. Default: no limit (15).
   */
  clientMaxWindowBits?: number;
}

/**
 * The parameters both sides agreed on, from the server's point of view.
 *
 * @example
 * ```ts
 * import type { DeflateParams } from "@duplex/ws/core";
 *
 * const params: DeflateParams = {
 *   serverNoContextTakeover: false,
 *   clientNoContextTakeover: true,
 *   serverMaxWindowBits: 15,
 *   clientMaxWindowBits: 15,
 * };
 * ```
 */
export interface DeflateParams {
  /** The server resets its compressor after every message. */
  serverNoContextTakeover: boolean;
  /** The client resets its compressor after every message (the server may reset its decompressor). */
  clientNoContextTakeover: boolean;
  /** The window the server compresses with, 9–15. */
  serverMaxWindowBits: number;
  /** The largest window the client compresses with, 9–15 (the server decompresses with it). */
  clientMaxWindowBits: number;
}

/**
 * An accepted offer: the agreed parameters and the answer to send.
 *
 * @example
 * ```ts
 * import { negotiateDeflate, parseExtensions } from "@duplex/ws/core";
 *
 * const accepted = negotiateDeflate(parseExtensions("permessage-deflate"));
 * console.log(accepted?.response); // "permessage-deflate"
 * ```
 */
export interface DeflateAgreement {
  /** The parameters in force. */
  params: DeflateParams;
  /** The `Sec-WebSocket-Extensions` value of the 101 answer. */
  response: string;
}

/** A window size as RFC 7692 writes it: 8–15, decimal, no leading zero. */
const WINDOW = /^(?:8|9|1[0-5])$/;

function checkWindow(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 9 || value > 15) {
    throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${name} must be an integer from 9 to 15, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * Checks negotiation options.
 *
 * @param options The server's options.
 * @returns The same options.
 * @throws {UsageError} `ERR_INVALID_OPTION` when a window size is not an
 *   integer from 9 to 15 (zlib's raw deflate cannot use 8) or a flag is not
 *   a boolean.
 *
 * @example
 * ```ts
 * import { checkDeflateNegotiation } from "@duplex/ws/core";
 *
 * checkDeflateNegotiation({ serverMaxWindowBits: 12 });
 * ```
 */
export function checkDeflateNegotiation(options: DeflateNegotiation): DeflateNegotiation {
  checkWindow("serverMaxWindowBits", options.serverMaxWindowBits);
  checkWindow("clientMaxWindowBits", options.clientMaxWindowBits);
  for (const flag of ["serverNoContextTakeover", "clientNoContextTakeover"] as const) {
    const value = options[flag];
    if (value !== undefined && typeof value !== "boolean") {
      throw new UsageError("ERR_INVALID_OPTION", `Invalid option: ${flag} must be a boolean, got ${describeValue(value)}`);
    }
  }
  return options;
}

/**
 * Accepts one of the client's `permessage-deflate` offers, in the client's
 * order of preference, or none.
 *
 * An offer is declined, and the next one considered, when:
 * - it repeats a parameter;
 * - it has a parameter RFC 7692 does not define, or a defined one with a
 *   value it may not have (a value on a `*_no_context_takeover`, a window
 *   size outside 8–15 or with a leading zero, a missing
 *   `server_max_window_bits` value);
 * - it asks for a window of 8 bits either way (`server_max_window_bits=8`,
 *   `client_max_window_bits=8`): zlib's raw deflate cannot hold a peer to
 *   it;
 * - the server limits the client's window (`clientMaxWindowBits`) and the
 *   offer does not say that the client supports `client_max_window_bits`.
 *
 * The answer names `server_no_context_takeover` when the client asked for it
 * or the server chose it, `client_no_context_takeover` likewise (the server
 * may then free its decompressor between messages), `server_max_window_bits`
 * when below 15 (the smaller of the offer and the option), and
 * `client_max_window_bits` only when the client offered it and the server
 * limits it (by its option or the offer's value).
 *
 * @param offers The parsed `Sec-WebSocket-Extensions` of the request.
 * @param options What the server is willing to agree to.
 * @returns The agreement, or `undefined` when no offer can be accepted.
 * @throws {UsageError} When an option is invalid.
 *
 * @example
 * ```ts
 * import { negotiateDeflate, parseExtensions } from "@duplex/ws/core";
 *
 * const offers = parseExtensions(
 *   "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
 * );
 * const agreement = negotiateDeflate(offers, { clientMaxWindowBits: 12 });
 * console.log(agreement?.response); // "permessage-deflate; client_max_window_bits=12"
 * ```
 */
export function negotiateDeflate(
  offers: readonly ExtensionOffer[],
  options: DeflateNegotiation = {},
): DeflateAgreement | undefined {
  checkDeflateNegotiation(options);
  for (const offer of offers) {
    if (offer.name.toLowerCase() !== PERMESSAGE_DEFLATE || offer.repeated !== undefined) continue;
    const params = accept(offer.params, options);
    if (params !== undefined) return { params, response: formatDeflateResponse(params, offer.params, options) };
  }
  return undefined;
}

function accept(offered: Record<string, string | true>, options: DeflateNegotiation): DeflateParams | undefined {
  let serverNoContextTakeover = options.serverNoContextTakeover ?? false;
  let clientNoContextTakeover = options.clientNoContextTakeover ?? false;
  let serverWindow = options.serverMaxWindowBits ?? 15;
  let clientWindow = options.clientMaxWindowBits ?? 15;
  let clientWindowOffered = false;
  for (const name of Object.keys(offered)) {
    const value = offered[name]!;
    switch (name) {
      case "server_no_context_takeover":
        if (value !== true) return undefined;
        serverNoContextTakeover = true;
        break;
      case "client_no_context_takeover":
        if (value !== true) return undefined;
        clientNoContextTakeover = true;
        break;
      case "server_max_window_bits": {
        if (value === true || !WINDOW.test(value) || value === "8") return undefined;
        serverWindow = Math.min(serverWindow, Number(value));
        break;
      }
      case "client_max_window_bits": {
        if (value !== true) {
          if (!WINDOW.test(value) || value === "8") return undefined;
          clientWindow = Math.min(clientWindow, Number(value));
        }
        clientWindowOffered = true;
        break;
      }
      default:
        return undefined;
    }
  }
  if (options.clientMaxWindowBits !== undefined && !clientWindowOffered) return undefined;
  return {
    serverNoContextTakeover,
    clientNoContextTakeover,
    serverMaxWindowBits: serverWindow,
    clientMaxWindowBits: clientWindow,
  };
}

/**
 * The `Sec-WebSocket-Extensions` answer for agreed parameters.
 *
 * @param params The agreed parameters.
 * @param offered The accepted offer's parameters (an answer may name
 *   `client_max_window_bits` only if the offer did).
 * @returns The header value, such as `"permessage-deflate; server_no_context_takeover"`.
 */
function formatDeflateResponse(
  params: DeflateParams,
  offered: Record<string, string | true>,
  options: DeflateNegotiation,
): string {
  let out = PERMESSAGE_DEFLATE;
  if (params.serverNoContextTakeover) out += "; server_no_context_takeover";
  if (params.clientNoContextTakeover) out += "; client_no_context_takeover";
  if (params.serverMaxWindowBits < 15 || Object.hasOwn(offered, "server_max_window_bits")) {
    out += `; server_max_window_bits=${params.serverMaxWindowBits}`;
  }
  const clientLimited = options.clientMaxWindowBits !== undefined || offered.client_max_window_bits !== true;
  if (Object.hasOwn(offered, "client_max_window_bits") && clientLimited) {
    out += `; client_max_window_bits=${params.clientMaxWindowBits}`;
  }
  return out;
}
