/**
 * The wire codec of `duplex.v1` (see PROTOCOL.md), shared by the server's
 * reliable layer and the client: the message types, and a decoder per
 * direction that checks every field and never throws. Imports nothing, so
 * a browser bundle of the client holds this file and nothing of the server.
 *
 * @module
 */

/** The subprotocol name of this version of the protocol. */
export const PROTOCOL_V1 = "duplex.v1";

/** Close codes of the protocol (beyond RFC 6455's own). */
export const WireClose = {
  /** A text message that is not a valid protocol message (bad JSON, unknown type, a missing or mistyped field). */
  BadMessage: 4400,
  /** More requests in flight on one connection than the server allows. */
  TooManyRequests: 4429,
} as const;

/** Where a subscription starts: after a position, from the oldest message held, or from now. */
export type From = Position | "start" | "now";

/** A message's place in a topic's history: its offset within an epoch. */
export interface Position {
  /** Names one continuous history of the topic; a new epoch means the old history is gone. */
  readonly epoch: string;
  /** The message's offset: 1 for the first message of an epoch, then +1 per message. 0: before the first. */
  readonly offset: number;
}

/** Why messages a subscriber asked for are lost. */
export type GapReason = "trimmed" | "expired" | "epoch";

/** Messages that a subscription asked for and will not get. */
export interface Gap {
  /** `trimmed` (the history's count or byte bound dropped them), `expired` (its age bound), `epoch` (the history itself is new: a restart, a flush). */
  readonly reason: GapReason;
  /** The epoch the lost messages belonged to. */
  readonly epoch: string;
  /** The first lost offset. */
  readonly from: number;
  /** The last lost offset, when known (not for `epoch`: the old history's end is unknown). */
  readonly to?: number;
}

/** Error codes of an `error` answer. */
export type WireErrorCode = "forbidden" | "invalid" | "unavailable" | "too_large";

/** A message from the client. */
export type ClientMessage =
  | { readonly type: "subscribe"; readonly id: number; readonly topic: string; readonly from: From }
  | { readonly type: "unsubscribe"; readonly id: number; readonly topic: string }
  | { readonly type: "publish"; readonly id: number; readonly topic: string; readonly key: string; readonly data: string | Uint8Array }
  | { readonly type: "ping"; readonly id: number };

/** A message from the server. */
export type ServerMessage =
  | {
    readonly type: "subscribed";
    readonly id: number;
    readonly topic: string;
    /** The position the replay starts after (messages with higher offsets follow, then live ones). */
    readonly position: Position;
    /** `recovered`: nothing asked for is missing; `gap`: see `gap`; `fresh`: `from` was `now` (or `start`). */
    readonly result: "recovered" | "gap" | "fresh";
    readonly gap?: Gap;
  }
  | { readonly type: "unsubscribed"; readonly id: number; readonly topic: string }
  | { readonly type: "message"; readonly topic: string; readonly epoch: string; readonly offset: number; readonly data: string | Uint8Array }
  | { readonly type: "ack"; readonly id: number; readonly topic: string; readonly epoch: string; readonly offset: number }
  | { readonly type: "error"; readonly id: number; readonly code: WireErrorCode; readonly message: string }
  | { readonly type: "pong"; readonly id: number };

/** The longest topic name, in characters. */
export const MAX_TOPIC = 1024;
/** The longest idempotency key, in characters. */
export const MAX_KEY = 256;
/** The longest epoch, in characters. */
export const MAX_EPOCH = 128;

const ERROR_CODES: readonly string[] = ["forbidden", "invalid", "unavailable", "too_large"];

/**
 * The size of a message's data in bytes: a string's UTF-8 length (counted,
 * not encoded), or the bytes' length. What both sides bound histories and
 * queues by.
 *
 * @param data The data.
 * @returns Its size in bytes.
 */
export function byteLength(data: string | Uint8Array): number {
  if (typeof data !== "string") return data.byteLength;
  let n = data.length;
  for (let i = 0; i < data.length; i++) {
    const c = data.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c < 0xdc00 && (data.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++, n += 2; // a pair: 4 bytes for 2 units
    else n += 2; // 3 bytes (a lone surrogate becomes U+FFFD)
  }
  return n;
}

// ---- encoding ----

/**
 * Encodes a message of either direction as the JSON text sent in one
 * WebSocket text frame. Binary `data` travels as base64 in `binary`.
 *
 * @param message The message.
 * @returns The frame's text.
 */
export function encode(message: ClientMessage | ServerMessage): string {
  if ("data" in message && typeof message.data !== "string") {
    const { data, ...rest } = message;
    return JSON.stringify({ ...rest, binary: toBase64(data) });
  }
  return JSON.stringify(message);
}

/**
 * The `message` frame of one history entry, as text: what every
 * subscriber of the topic gets, so it is built once per entry.
 *
 * @param topic The topic.
 * @param epoch The entry's epoch.
 * @param offset The entry's offset.
 * @param data The entry's data.
 * @returns The frame's text.
 */
export function encodeEntry(topic: string, epoch: string, offset: number, data: string | Uint8Array): string {
  return encode({ type: "message", topic, epoch, offset, data });
}

// ---- decoding ----

type Fields = Record<string, unknown>;

const isId = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isOffset = isId;
const isTopic = (v: unknown): v is string => typeof v === "string" && v !== "" && v.length <= MAX_TOPIC;
const isEpoch = (v: unknown): v is string => typeof v === "string" && v !== "" && v.length <= MAX_EPOCH;

function parse(text: string): Fields | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Fields : undefined;
}

function dataOf(m: Fields): string | Uint8Array | undefined {
  if (typeof m.data === "string") return "binary" in m ? undefined : m.data;
  if (typeof m.binary === "string") return fromBase64(m.binary);
  return undefined;
}

function positionOf(v: unknown): Position | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const { epoch, offset } = v as Fields;
  return isEpoch(epoch) && isOffset(offset) ? { epoch, offset } : undefined;
}

/**
 * Decodes a message from a client, checking every field.
 *
 * @param text The text frame.
 * @returns The message, or a description of what is wrong with it.
 */
export function decodeClient(text: string): ClientMessage | string {
  const m = parse(text);
  if (m === undefined) return "not a JSON object";
  if (!isId(m.id)) return "id must be a non-negative integer";
  const id = m.id;
  switch (m.type) {
    case "ping":
      return { type: "ping", id };
    case "subscribe": {
      if (!isTopic(m.topic)) return `topic must be a non-empty string of at most ${MAX_TOPIC} characters`;
      const from = m.from === undefined || m.from === "now" ? "now" : m.from === "start" ? "start" : positionOf(m.from);
      if (from === undefined) return 'from must be "start", "now" or { epoch, offset }';
      return { type: "subscribe", id, topic: m.topic, from };
    }
    case "unsubscribe":
      if (!isTopic(m.topic)) return `topic must be a non-empty string of at most ${MAX_TOPIC} characters`;
      return { type: "unsubscribe", id, topic: m.topic };
    case "publish": {
      if (!isTopic(m.topic)) return `topic must be a non-empty string of at most ${MAX_TOPIC} characters`;
      if (typeof m.key !== "string" || m.key === "" || m.key.length > MAX_KEY) return `key must be a non-empty string of at most ${MAX_KEY} characters`;
      const data = dataOf(m);
      if (data === undefined) return "publish needs data (a string) or binary (base64), not both";
      return { type: "publish", id, topic: m.topic, key: m.key, data };
    }
    default:
      return `unknown type ${JSON.stringify(m.type)}`.slice(0, 100);
  }
}

/**
 * Decodes a message from the server, checking every field.
 *
 * @param text The text frame.
 * @returns The message, or a description of what is wrong with it.
 */
export function decodeServer(text: string): ServerMessage | string {
  const m = parse(text);
  if (m === undefined) return "not a JSON object";
  switch (m.type) {
    case "message": {
      if (!isTopic(m.topic) || !isEpoch(m.epoch) || !isOffset(m.offset)) return "message needs topic, epoch and offset";
      const data = dataOf(m);
      if (data === undefined) return "message needs data or binary";
      return { type: "message", topic: m.topic, epoch: m.epoch, offset: m.offset, data };
    }
    case "subscribed": {
      const position = positionOf(m.position);
      if (!isId(m.id) || !isTopic(m.topic) || position === undefined) return "subscribed needs id, topic and position";
      if (m.result !== "recovered" && m.result !== "gap" && m.result !== "fresh") return "subscribed needs a result";
      if (m.result !== "gap") return { type: "subscribed", id: m.id, topic: m.topic, position, result: m.result };
      const g = m.gap as Fields | undefined;
      if (
        typeof g !== "object" || g === null || (g.reason !== "trimmed" && g.reason !== "expired" && g.reason !== "epoch") ||
        !isEpoch(g.epoch) || !isOffset(g.from) || (g.to !== undefined && !isOffset(g.to))
      ) return "a gap needs reason, epoch and from";
      const gap: Gap = g.to === undefined
        ? { reason: g.reason, epoch: g.epoch, from: g.from }
        : { reason: g.reason, epoch: g.epoch, from: g.from, to: g.to as number };
      return { type: "subscribed", id: m.id, topic: m.topic, position, result: "gap", gap };
    }
    case "unsubscribed":
      if (!isId(m.id) || !isTopic(m.topic)) return "unsubscribed needs id and topic";
      return { type: "unsubscribed", id: m.id, topic: m.topic };
    case "ack":
      if (!isId(m.id) || !isTopic(m.topic) || !isEpoch(m.epoch) || !isOffset(m.offset)) return "ack needs id, topic, epoch and offset";
      return { type: "ack", id: m.id, topic: m.topic, epoch: m.epoch, offset: m.offset };
    case "error":
      if (!isId(m.id) || typeof m.code !== "string" || !ERROR_CODES.includes(m.code) || typeof m.message !== "string") {
        return "error needs id, code and message";
      }
      return { type: "error", id: m.id, code: m.code as WireErrorCode, message: m.message };
    case "pong":
      if (!isId(m.id)) return "pong needs an id";
      return { type: "pong", id: m.id };
    default:
      return `unknown type ${JSON.stringify(m.type)}`.slice(0, 100);
  }
}

// ---- base64, without Buffer or atob's binary strings on large inputs ----

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LOOKUP = new Uint8Array(128).fill(255);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

function toBase64(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  if (i < bytes.length) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + (i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63]! : "=") + "=";
  }
  return out;
}

function fromBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined;
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      const v = c === 61 && i + j >= text.length - pad ? 0 : c < 128 ? LOOKUP[c]! : 255;
      if (v === 255) return undefined;
      n = (n << 6) | v;
    }
    if (o < out.length) out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}
