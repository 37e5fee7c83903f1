// A TCP proxy for the reliable-delivery tests: it forwards every connection
// to a target and cuts each one at a random moment (a seeded PRNG, so a
// failing run can be replayed from its seed), counting the cuts. It can also
// stop the traffic (`pause`: refuse new connections and cut the open ones,
// or blackhole them: accept and forward nothing, as a dead network does),
// resume, and retarget (a restarted server listens on a new port).
//
// Only node:net, so that it runs under Node, Deno and Bun.
import { connect, createServer, type Server, type Socket } from "node:net";
import { prng } from "../_prng.ts";

/** Options of {@linkcode CutProxy}. */
export interface CutProxyOptions {
  /** The port forwarded to, on 127.0.0.1. */
  target: number;
  /** The seed of the cut moments. Default 1. */
  seed?: number;
  /**
   * How long each connection lives before it is cut, in ms, drawn uniformly
   * from `[min, max]`; `false`: never cut (until `pause` or `cutAll`).
   * Default `[20, 400]`.
   */
  lifetimeMs?: readonly [number, number] | false;
}

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  timer?: ReturnType<typeof setTimeout>;
}

/** A cutting TCP proxy on 127.0.0.1; see the file's comment. */
export class CutProxy {
  readonly #server: Server;
  readonly #links = new Set<Link>();
  readonly #held = new Set<Socket>();
  readonly #random: () => number;
  #target: number;
  #lifetime: readonly [number, number] | false;
  #mode: "open" | "refuse" | "blackhole" = "open";
  /** Connections cut while open, by the timer, `pause` or `cutAll`. */
  cuts = 0;
  /** Connections accepted (including refused ones). */
  connections = 0;
  /** The port it listens on, once `listen()` resolved. */
  port = 0;

  constructor(options: CutProxyOptions) {
    this.#target = options.target;
    this.#random = prng(options.seed ?? 1);
    this.#lifetime = options.lifetimeMs ?? [20, 400];
    this.#server = createServer((client) => this.#accept(client));
  }

  /** Starts listening on an ephemeral port; resolves with it. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(0, "127.0.0.1", () => {
        this.port = (this.#server.address() as { port: number }).port;
        resolve(this.port);
      });
    });
  }

  /** `ws://127.0.0.1:<port><path>`. */
  url(path = "/"): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** Connections open right now. */
  get open(): number {
    return this.#links.size;
  }

  /** Changes how long later connections live (`false`: not cut). */
  setLifetime(lifetimeMs: readonly [number, number] | false): void {
    this.#lifetime = lifetimeMs;
  }

  /** Forwards later connections to `port` (the open ones are cut). */
  retarget(port: number): void {
    this.#target = port;
    this.cutAll();
  }

  /**
   * Stops the traffic. `refuse`: open connections are cut, new ones closed
   * at once (a down server). `blackhole`: nothing is forwarded any more
   * either way, and new connections are accepted and then ignored (a dead
   * network: only a timeout notices).
   */
  pause(mode: "refuse" | "blackhole" = "refuse"): void {
    this.#mode = mode;
    if (mode === "refuse") {
      this.cutAll();
      return;
    }
    for (const link of this.#links) {
      clearTimeout(link.timer);
      link.client.pause();
      link.upstream.pause();
      link.client.unpipe();
      link.upstream.unpipe();
    }
  }

  /** Lets traffic through again; connections held by a blackhole are cut (their bytes are lost). */
  resume(): void {
    this.#mode = "open";
    for (const socket of this.#held) socket.destroy();
    this.#held.clear();
    this.cutAll();
  }

  /** Cuts every open connection now; returns how many. */
  cutAll(): number {
    const n = this.#links.size;
    for (const link of [...this.#links]) this.#cut(link);
    return n;
  }

  /** Cuts everything and stops listening. */
  close(): Promise<void> {
    this.#mode = "refuse";
    this.cutAll();
    for (const socket of this.#held) socket.destroy();
    this.#held.clear();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.connections++;
    client.on("error", () => {});
    if (this.#mode === "refuse") return void client.destroy();
    if (this.#mode === "blackhole") {
      this.#held.add(client);
      client.on("close", () => this.#held.delete(client));
      client.resume(); // read and drop
      return;
    }
    const upstream = connect(this.#target, "127.0.0.1");
    upstream.on("error", () => {});
    const link: Link = { client, upstream };
    this.#links.add(link);
    const end = () => {
      if (!this.#links.delete(link)) return;
      clearTimeout(link.timer);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
    const lifetime = this.#lifetime;
    if (lifetime !== false) {
      const [min, max] = lifetime;
      link.timer = setTimeout(() => this.#cut(link), min + this.#random() * (max - min));
    }
  }

  /** An abrupt end, both ways: no close frame, no FIN handshake to wait for. */
  #cut(link: Link): void {
    if (!this.#links.delete(link)) return;
    clearTimeout(link.timer);
    this.cuts++;
    for (const socket of [link.client, link.upstream]) {
      const reset = (socket as Socket & { resetAndDestroy?: () => void }).resetAndDestroy;
      if (typeof reset === "function" && socket.readyState === "open") reset.call(socket);
      else socket.destroy();
    }
  }
}
