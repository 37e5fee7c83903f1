/**
 * The wire codec of `duplex.v1` (see PROTOCOL.md), shared by the server's
 * reliable and contract layers and the client: the message types, and a
 * decoder per direction that checks every field and never throws. Imports nothing, so
 * a browser bundle of the client holds this file and nothing of the server.
 *
 * @module
 */

/** The subprotocol name of this version of the protocol. */
export const PROTOCOL_V1 = "duplex.v1";

/** Close codes of the protocol (beyond RFC 6455's own). */
export const WireClose = {
  /** A text message that is not a valid protocol message (bad JSON, nested too deeply, unknown type, a missing or mistyped field). */
  BadMessage: 4400,
  /** A client event (`emit`) that the contract does not declare, or whose data fails its schema. */
  InvalidEvent: 4422,
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

/**
 * Error codes of an `error` answer: the reliable layer's four, then the
 * contract's (`not_found`: no such call; `failed`: the handler threw;
 * `cancelled`: the call was cancelled; `busy`: too many calls in flight on
 * the connection, the call did not run).
 */
export type WireErrorCode = "forbidden" | "invalid" | "unavailable" | "too_large" | "not_found" | "failed" | "cancelled" | "busy";

/** One reason why a value failed its schema: a message and, when known, where in the value. */
export interface WireIssue {
  /** What is wrong, in the validator's words. */
  readonly message: string;
  /** The keys and indexes from the value's root to the faulty part. */
  readonly path?: readonly (string | number)[];
}

/** The error a call's handler threw, as it crosses the wire: a declared error's name and data, or `"Error"`. */
export interface WireFailure {
  /** The declared error's name (a key of the call's `errors`), or `"Error"` for an undeclared one. */
  readonly name: string;
  /** The declared error's data; absent for an undeclared one. */
  readonly data?: unknown;
}

/** A message from the client. */
export type ClientMessage =
  | { readonly type: "subscribe"; readonly id: number; readonly topic: string; readonly from: From }
  | { readonly type: "unsubscribe"; readonly id: number; readonly topic: string }
  | { readonly type: "publish"; readonly id: number; readonly topic: string; readonly key: string; readonly data: string | Uint8Array }
  | { readonly type: "ping"; readonly id: number }
  | {
    readonly type: "call";
    readonly id: number;
    /** The call's name in the contract. */
    readonly name: string;
    /** The call's input (any JSON value; `undefined` when absent). */
    readonly input: unknown;
    /** An idempotent call's idempotency key, the same when the call is sent again. */
    readonly key?: string;
    /** A stream call's initial credit: how many `item`s the server may send before more credit arrives. Absent: no limit. */
    readonly credit?: number;
  }
  | { readonly type: "cancel"; readonly id: number }
  | { readonly type: "credit"; readonly id: number; readonly n: number }
  | { readonly type: "emit"; readonly name: string; readonly data: unknown };

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
  | {
    readonly type: "error";
    readonly id: number;
    readonly code: WireErrorCode;
    readonly message: string;
    /** With `invalid` from a call: why its input failed the schema. */
    readonly issues?: readonly WireIssue[];
    /** With `failed`: the error the handler threw. */
    readonly error?: WireFailure;
  }
  | { readonly type: "pong"; readonly id: number }
  | { readonly type: "result"; readonly id: number; readonly value?: unknown }
  | { readonly type: "item"; readonly id: number; readonly value: unknown }
  | { readonly type: "event"; readonly name: string; readonly data: unknown };

/** The longest topic name, in characters. */
export const MAX_TOPIC = 1024;
/** The longest idempotency key, in characters. */
export const MAX_KEY = 256;
/** The longest epoch, in characters. */
export const MAX_EPOCH = 128;
/** The longest call or event name, in characters. */
export const MAX_NAME = 128;
/** The deepest JSON nesting (objects and arrays) a decoder accepts, checked before parsing. */
export const MAX_DEPTH = 64;

const ERROR_CODES: readonly string[] = ["forbidden", "invalid", "unavailable", "too_large", "not_found", "failed", "cancelled", "busy"];

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
  if ((message.type === "publish" || message.type === "message") && typeof message.data !== "string") {
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
const isName = (v: unknown): v is string => typeof v === "string" && v !== "" && v.length <= MAX_NAME;
const isCount = (v: unknown): v is number => isId(v) && v > 0;

/**
 * Whether JSON text nests objects and arrays deeper than `max`, found by
 * one scan of the text (brackets inside strings do not count), so that a
 * hostile message is refused before `JSON.parse` builds it.
 *
 * @param text The JSON text.
 * @param max The deepest nesting allowed.
 * @returns `true` when some value is nested deeper.
 */
export function nestedDeeper(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // A string: on to its closing quote (indexOf is fast on long data), past escaped quotes.
      for (;;) {
        const quote = text.indexOf('"', i + 1);
        if (quote < 0) return false; // unterminated: JSON.parse refuses it
        let slash = quote - 1;
        while (text.charCodeAt(slash) === 92) slash--;
        i = quote;
        if ((quote - 1 - slash) % 2 === 0) break; // an even run of backslashes: not escaped
      }
    } else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

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
  if (nestedDeeper(text, MAX_DEPTH)) return `nested deeper than ${MAX_DEPTH} levels`;
  const m = parse(text);
  if (m === undefined) return "not a JSON object";
  if (m.type === "emit") {
    if (!isName(m.name)) return `name must be a non-empty string of at most ${MAX_NAME} characters`;
    return { type: "emit", name: m.name, data: m.data };
  }
  if (!isId(m.id)) return "id must be a non-negative integer";
  const id = m.id;
  switch (m.type) {
    case "call": {
      if (!isName(m.name)) return `name must be a non-empty string of at most ${MAX_NAME} characters`;
      if (m.key !== undefined && (typeof m.key !== "string" || m.key === "" || m.key.length > MAX_KEY)) {
        return `key must be a non-empty string of at most ${MAX_KEY} characters`;
      }
      if (m.credit !== undefined && !isCount(m.credit)) return "credit must be a positive integer";
      const call: { -readonly [K in keyof CallMessage]: CallMessage[K] } = { type: "call", id, name: m.name, input: m.input };
      if (m.key !== undefined) call.key = m.key;
      if (m.credit !== undefined) call.credit = m.credit;
      return call;
    }
    case "cancel":
      return { type: "cancel", id };
    case "credit":
      if (!isCount(m.n)) return "n must be a positive integer";
      return { type: "credit", id, n: m.n };
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
  if (m.type === "event") return isName(m.name) ? { type: "event", name: m.name, data: m.data } : "event needs a name";
  if (m.type === "item" || m.type === "result") {
    if (!isId(m.id)) return `${m.type} needs an id`;
    return m.type === "item" ? { type: "item", id: m.id, value: m.value } : { type: "result", id: m.id, value: m.value };
  }
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
    case "error": {
      if (!isId(m.id) || typeof m.code !== "string" || !ERROR_CODES.includes(m.code) || typeof m.message !== "string") {
        return "error needs id, code and message";
      }
      const e: { -readonly [K in keyof ErrorMessage]: ErrorMessage[K] } = { type: "error", id: m.id, code: m.code as WireErrorCode, message: m.message };
      if (m.issues !== undefined) {
        if (!Array.isArray(m.issues) || !m.issues.every(isIssue)) return "issues must be a list of { message, path? }";
        e.issues = m.issues;
      }
      const f = m.error as Fields | undefined;
      if (f !== undefined || e.code === "failed") {
        if (typeof f !== "object" || f === null || typeof f.name !== "string") return "failed needs error: { name, data? }";
        e.error = "data" in f ? { name: f.name, data: f.data } : { name: f.name };
      }
      return e;
    }
    case "pong":
      if (!isId(m.id)) return "pong needs an id";
      return { type: "pong", id: m.id };
    default:
      return `unknown type ${JSON.stringify(m.type)}`.slice(0, 100);
  }
}

type CallMessage = Extract<ClientMessage, { type: "call" }>;
type ErrorMessage = Extract<ServerMessage, { type: "error" }>;

function isIssue(v: unknown): v is WireIssue {
  if (typeof v !== "object" || v === null || typeof (v as Fields).message !== "string") return false;
  const path = (v as Fields).path;
  return path === undefined || (Array.isArray(path) && path.every((k) => typeof k === "string" || typeof k === "number"));
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
