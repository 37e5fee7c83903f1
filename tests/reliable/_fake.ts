// Test doubles for the client: a fake clock with timers, a scripted fake
// WebSocket, a fake browser window, and a small in-memory duplex.v1 server
// (a model of the protocol, for the property test and the flows).
import { setImmediate } from "node:timers";
import { type ClientOptions, DuplexClient, type StatusEvent, type SubscribeResult, type Timers } from "../../client/mod.ts";
import type { DuplexError } from "../../client/mod.ts";

/** Lets every pending microtask and promise chain run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A manual clock: timers run only when the test advances time. */
export class FakeTimers implements Timers {
  time = 0;
  #seq = 0;
  readonly pending = new Map<number, { at: number; fn: () => void }>();

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.#seq;
    this.pending.set(id, { at: this.time + ms, fn });
    return id;
  };
  clearTimeout = (handle: unknown): void => {
    this.pending.delete(handle as number);
  };
  now = (): number => this.time;

  /** The delays of the pending timers, from now. */
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }

  /** Runs the timers due within `ms`, in time order (then microtasks after each), and ends at now + ms. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.pending) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      next[1].fn();
      await tick();
    }
    this.time = end;
    await tick();
  }
}

/** What a fake socket was sent, decoded. */
export type Sent = Record<string, any> & { type: string };

/** A scripted WebSocket: the test opens it, feeds it frames and closes it. */
export class FakeSocket {
  protocol = "";
  readyState = 0;
  readonly sent: Sent[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onopen: ((event: any) => void) | null = null;
  onmessage: ((event: any) => void) | null = null;
  onclose: ((event: any) => void) | null = null;
  onerror: ((event: any) => void) | null = null;
  readonly url: string;
  readonly protocols: string[];
  constructor(url: string, protocols: string[]) {
    this.url = url;
    this.protocols = protocols;
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(data));
  }
  close(code?: number, reason?: string): void {
    this.closedWith ??= { code, reason };
    this.readyState = 3;
  }

  // ---- the server's side ----
  /** Accepts the connection (with duplex.v1 unless told otherwise). */
  open(protocol = "duplex.v1"): void {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen?.({});
  }
  /** Delivers a frame: an object is sent as JSON. */
  receive(message: object | string | Uint8Array): void {
    this.onmessage?.({ data: typeof message === "object" && !(message instanceof Uint8Array) ? JSON.stringify(message) : message });
  }
  /** The connection ends from the far side. */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** Whether the client let go of it (closed it, or stopped listening). */
  get abandoned(): boolean {
    return this.closedWith !== undefined || this.onmessage === null;
  }
  /** The sent messages of one type. */
  of(type: string): Sent[] {
    return this.sent.filter((m) => m.type === type);
  }
}

/** A fake `window`: its listeners, and online/visibility state. */
export class FakeBrowser {
  readonly listeners = new Map<string, Set<() => void>>();
  navigator = { onLine: true };
  document = { visibilityState: "visible" };
  addEventListener(type: string, listener: () => void): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(listener);
  }
  removeEventListener(type: string, listener: () => void): void {
    this.listeners.get(type)?.delete(listener);
  }
  fire(type: string): void {
    if (type === "online") this.navigator.onLine = true;
    if (type === "offline") this.navigator.onLine = false;
    for (const f of this.listeners.get(type) ?? []) f();
  }
  count(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}

/** A client on fake timers and fake sockets, with everything it reports recorded. */
export function setup(options: ClientOptions & { url?: ConstructorParameters<typeof DuplexClient>[0] } = {}) {
  const timers = new FakeTimers();
  const sockets: FakeSocket[] = [];
  const WebSocket = class extends FakeSocket {
    constructor(url: string, protocols: string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  };
  const { url = "ws://test/", ...rest } = options;
  const client = new DuplexClient(url, { WebSocket, timers, random: () => 1, browser: false, heartbeat: false, ...rest });
  const statuses: StatusEvent[] = [];
  const errors: DuplexError[] = [];
  const results: SubscribeResult[] = [];
  client.on("status", (e) => void statuses.push(e));
  client.on("error", (e) => void errors.push(e));
  client.on("subscribed", (r) => void results.push(r));
  return {
    client,
    timers,
    sockets,
    statuses,
    errors,
    results,
    /** The newest socket. */
    get ws(): FakeSocket {
      const ws = sockets.at(-1);
      if (!ws) throw new Error("no socket yet");
      return ws;
    },
    /** Lets the first attempt start, and opens its socket. */
    async connect(): Promise<FakeSocket> {
      await tick();
      const ws = sockets.at(-1)!;
      ws.open();
      await tick();
      return ws;
    },
  };
}

/** Answers a subscribe request as a server would (with nothing to replay). */
export function subscribed(req: Sent, epoch: string, offset: number, result: "recovered" | "gap" | "fresh" = "fresh", gap?: object): object {
  return { type: "subscribed", id: req.id, topic: req.topic, position: { epoch, offset }, result, ...(gap ? { gap } : {}) };
}

/** A `message` frame. */
export function message(topic: string, epoch: string, offset: number, data: string = `${offset}`): object {
  return { type: "message", topic, epoch, offset, data };
}

/** Settles a promise's outcome into a value, for assertions. */
export async function outcome<T>(p: Promise<T>): Promise<{ ok: T } | { code: string }> {
  try {
    return { ok: await p };
  } catch (e) {
    return { code: (e as DuplexError).code ?? String(e) };
  }
}
