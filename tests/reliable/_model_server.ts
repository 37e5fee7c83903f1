// A model of a duplex.v1 server over the fake sockets, for the property
// test: one history per topic (that can be trimmed, or replaced by a new
// epoch), idempotent publishes by key, replay then live per subscription,
// and knobs for faults: a live message not sent (a hole), an old one sent
// again (a duplicate). It answers only when the test says `serve`.
import type { FakeSocket } from "./_fake.ts";

interface Log {
  epoch: string;
  /** Oldest offset held (last + 1 when none). */
  first: number;
  last: number;
}

export class ModelServer {
  /** Every entry ever stored, by epoch then offset: what a delivery must match. */
  readonly history = new Map<string, Map<number, string>>();
  readonly logs = new Map<string, Log>();
  #keys = new Map<string, { epoch: string; offset: number }>();
  #epochs = 0;
  /** The current epoch. */
  epoch = "";
  /** Per socket: requests already read, and the live subscriptions (topic → last offset sent). */
  #conns = new WeakMap<FakeSocket, { read: number; subs: Map<string, number>; skip: boolean; muted: boolean }>();
  /** The next subscribe answer also sends the message before its position again (an overlap at the seam). */
  overlapNext = false;
  /** The next subscribe is answered `error unavailable` (the history is down for a moment). */
  failNext = false;

  constructor() {
    this.restart();
  }

  #conn(ws: FakeSocket) {
    let c = this.#conns.get(ws);
    if (!c) this.#conns.set(ws, c = { read: 0, subs: new Map(), skip: false, muted: false });
    return c;
  }

  #log(topic: string): Log {
    let log = this.logs.get(topic);
    if (!log) this.logs.set(topic, log = { epoch: this.epoch, first: 1, last: 0 });
    return log;
  }

  /** A new epoch: every history is gone, every key forgotten. */
  restart(): void {
    this.epoch = `e${++this.#epochs}`;
    this.history.set(this.epoch, new Map());
    this.logs.clear();
    this.#keys.clear();
  }

  #out(ws: FakeSocket, message: object): void {
    if (!this.#conn(ws).muted) ws.receive(message);
  }

  /** Handles up to `n` requests whose answers are lost, then the connection is cut: stored, never acked. */
  cut(ws: FakeSocket, n: number, sockets: FakeSocket[]): void {
    if (ws.readyState !== 1) return;
    this.#conn(ws).muted = true;
    this.serve(ws, n, sockets);
    ws.drop(1006);
  }

  /** Drops the oldest `n` entries of a topic. */
  trim(topic: string, n: number): void {
    const log = this.#log(topic);
    log.first = Math.min(log.last + 1, log.first + n);
  }

  /** Stores an entry and sends it to the live subscribers among `sockets`. */
  append(topic: string, data: string, sockets: FakeSocket[]): { epoch: string; offset: number } {
    const log = this.#log(topic);
    const offset = ++log.last;
    this.history.get(log.epoch)!.set(offset, data);
    for (const ws of sockets) {
      if (ws.readyState !== 1) continue;
      const c = this.#conn(ws);
      if (!c.subs.has(topic)) continue;
      c.subs.set(topic, offset);
      if (c.skip) c.skip = false;
      else this.#out(ws, { type: "message", topic, epoch: log.epoch, offset, data });
    }
    return { epoch: log.epoch, offset };
  }

  /** The next live message to this socket is lost. */
  skipNext(ws: FakeSocket): void {
    this.#conn(ws).skip = true;
  }

  /** Sends an already sent message of a topic again. */
  duplicate(ws: FakeSocket, topic: string, pick: number): void {
    const c = this.#conn(ws);
    const sent = c.subs.get(topic);
    const log = this.#log(topic);
    if (ws.readyState !== 1 || sent === undefined || sent < log.first) return;
    const offset = log.first + (pick % (sent - log.first + 1));
    this.#out(ws, { type: "message", topic, epoch: log.epoch, offset, data: this.history.get(log.epoch)!.get(offset)! });
  }

  /** Answers up to `n` of the socket's unread requests, in order. */
  serve(ws: FakeSocket, n: number, sockets: FakeSocket[]): void {
    const c = this.#conn(ws);
    while (n-- > 0 && c.read < ws.sent.length && ws.readyState === 1) {
      const m = ws.sent[c.read++]!;
      switch (m.type) {
        case "ping":
          this.#out(ws, { type: "pong", id: m.id });
          break;
        case "unsubscribe":
          c.subs.delete(m.topic);
          this.#out(ws, { type: "unsubscribed", id: m.id, topic: m.topic });
          break;
        case "publish": {
          const stored = this.#keys.get(m.key) ?? this.append(m.topic, m.data, sockets);
          this.#keys.set(m.key, stored);
          this.#out(ws, { type: "ack", id: m.id, topic: m.topic, ...stored });
          break;
        }
        case "subscribe": {
          if (this.failNext) {
            this.failNext = false;
            this.#out(ws, { type: "error", id: m.id, code: "unavailable", message: "history down" });
            break;
          }
          const log = this.#log(m.topic);
          const from = m.from;
          let after = log.first - 1;
          let result = "fresh";
          let gap: object | undefined;
          if (from === "now") after = log.last;
          else if (from !== "start") {
            if (from.epoch !== log.epoch) (result = "gap"), (gap = { reason: "epoch", epoch: from.epoch, from: from.offset + 1 });
            else if (from.offset < log.first - 1) (result = "gap"), (gap = { reason: "trimmed", epoch: log.epoch, from: from.offset + 1, to: log.first - 1 });
            else (after = Math.min(from.offset, log.last)), (result = "recovered");
          }
          this.#out(ws, { type: "subscribed", id: m.id, topic: m.topic, position: { epoch: log.epoch, offset: after }, result, ...(gap ? { gap } : {}) });
          const overlap = this.overlapNext && after >= log.first;
          this.overlapNext = false;
          for (let o = overlap ? after : after + 1; o <= log.last; o++) {
            this.#out(ws, { type: "message", topic: m.topic, epoch: log.epoch, offset: o, data: this.history.get(log.epoch)!.get(o)! });
          }
          c.subs.set(m.topic, log.last);
          break;
        }
      }
    }
  }

  /** Whether every request of the socket has been answered. */
  served(ws: FakeSocket): boolean {
    return this.#conn(ws).read === ws.sent.length;
  }
}
