// The packages as a new user gets them, outside this repository:
// - npm: `npm pack` (which builds dist/ first), the tarball installed into a
//   fresh project with no TypeScript loader and no access to the registry;
//   a plain .mjs echo server that imports `@duplex/ws` by name answers the
//   `ws` client on Node and on Bun; every subpath loads on both; a TypeScript
//   consumer type-checks against the shipped .d.ts through the `types`
//   conditions (strict, NodeNext, with a line that must fail to compile).
// - JSR: the files `deno.json` publishes, copied into a fresh Deno workspace;
//   the same echo server imports `@duplex/ws` through that deno.json's
//   exports and runs with `--allow-net` only.
//
// It builds and runs all three runtimes itself, so it runs from Node only
// (npm run test:node); under `deno test` and `bun test`, which also find it,
// it skips itself.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { runtime } from "../../mod.ts";
import { root, spawnServer, within } from "../runtimes/_helpers.ts";

const run = promisify(execFile);
const on = runtime();
const skip = on === "node" ? false : "drives npm, Node, Bun and Deno itself: runs from Node (npm run test:node)";
const DENO = `${root}node_modules/.bin/deno`;
const BUN = `${root}node_modules/.bin/bun`;
const TSC = `${root}node_modules/typescript/bin/tsc`;

/** The environment of a new user's shell: none of the npm lifecycle variables `npm test` sets. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== "NODE_OPTIONS" && key !== "INIT_CWD") env[key] = value;
  }
  return env;
}

// The echo server a user writes after reading the README: `serve` from the
// root entry picks the adapter of the runtime it runs on.
const ECHO = `import { serve } from "@duplex/ws";

const server = await serve({
  message(ctx, data) {
    ctx.send(data);
  },
}, { port: 0, hostname: "127.0.0.1" });
console.log(\`listening on \${server.url}\`);
const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
`;

/** What imports.mjs prints: a few exports of every subpath, as loaded. */
const SUBPATH_EXPORTS = {
  "@duplex/ws": ["serve", "App", "CloseCode", "Router"],
  "@duplex/ws/core": ["Engine", "parseExtensions", "acceptKey"],
  "@duplex/ws/node": ["serve", "attach"],
  "@duplex/ws/deno": ["serve", "nativeHandler"],
  "@duplex/ws/bun": ["serve", "nativeHandler"],
  "@duplex/ws/hono": ["upgradeWebSocket", "injectWebSocket", "websocket"],
  "@duplex/ws/redis": ["RedisBackplane", "BackplaneError"],
  "@duplex/ws/client": ["DuplexClient", "DuplexError", "defaultShouldRetry"],
  "@duplex/ws/dashboard": ["dashboard", "bearerToken", "protect"],
};

// Every subpath loads on the runtime and has its main exports; the root
// entry holds the app-level API only, so the engine is not there.
const IMPORTS = `const expected = ${JSON.stringify(SUBPATH_EXPORTS)};
const found = {};
for (const [name, exports] of Object.entries(expected)) {
  const mod = await import(name);
  found[name] = exports.filter((e) => mod[e] !== undefined);
}
const root = await import("@duplex/ws");
found.rootEngine = ["Engine", "Receiver", "encodeFrame", "RedisBackplane"].filter((e) => root[e] !== undefined);
console.log(JSON.stringify(found));
`;

// A TypeScript consumer: the shipped types, through the \`types\` conditions.
const CONSUMER = `import { App, CloseCode, serve, type Handler } from "@duplex/ws";
import { Engine, type EngineEvent } from "@duplex/ws/core";
import { attach } from "@duplex/ws/node";
import { nativeHandler as denoHandler } from "@duplex/ws/deno";
import { nativeHandler as bunHandler } from "@duplex/ws/bun";
import { upgradeWebSocket } from "@duplex/ws/hono";
import { DuplexClient, type Position } from "@duplex/ws/client";

const handler: Handler = {
  message(ctx, data) {
    if (typeof data !== "string") return ctx.close(CloseCode.UnsupportedData, "text only");
    ctx.send(data.toUpperCase());
  },
};
const engine = new Engine({ maxMessageBytes: 1024 });
const event: EngineEvent | undefined = engine.nextEvent();
const state: number = engine.state;
const app = new App().use((_ctx, next) => next());
const route = upgradeWebSocket(() => ({ onMessage: (event, ws) => ws.send(event.data) }));
const client = new DuplexClient("ws://127.0.0.1:1/", { WebSocket: class {} as never, browser: false });
const position: Promise<Position> = client.publish("topic", "data");
export const used = [handler, event, state, app, route, attach, denoHandler, bunHandler, serve, position];
// @ts-expect-error: the types are real, not \`any\`: a port is a number.
await serve(handler, { port: "8080" });
`;


/** Echoes a text and a binary message through `url` with the `ws` client, and closes with 1000. */
async function echoes(url: string): Promise<void> {
  const ws = new WebSocket(url);
  const received: (string | Buffer)[] = [];
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  ws.on("message", (data, isBinary) => void received.push(isBinary ? (data as Buffer) : data.toString()));
  await within(new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject))), 5000, "open");
  ws.send("hello from a new user");
  ws.send(new Uint8Array([0, 1, 2, 255]));
  const deadline = Date.now() + 5000;
  while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  ws.close(1000, "done");
  assert.equal(await within(closed, 5000, "close"), 1000);
  assert.equal(received[0], "hello from a new user");
  assert.deepEqual(received[1], Buffer.from([0, 1, 2, 255]));
}

describe("the npm package, installed as a new user would", { skip }, () => {
  let work = "";
  let app = "";
  let files: string[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "duplex-package-"));
    // `npm pack` runs the prepack script: the build to dist/.
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", work], {
      cwd: root,
      env: userEnv(),
      maxBuffer: 16 << 20,
    });
    const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    assert.ok(packed, "npm pack reported no tarball");
    files = packed.files.map((f) => f.path).sort();
    app = join(work, "app");
    await mkdir(app);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    await run("npm", ["install", "--offline", "--no-audit", "--no-fund", join(work, packed.filename)], {
      cwd: app,
      env: userEnv(),
    });
    await writeFile(join(app, "echo.mjs"), ECHO);
    await writeFile(join(app, "imports.mjs"), IMPORTS);
  });

  after(async () => {
    if (work !== "") await rm(work, { recursive: true, force: true });
  });

  it("ships the built JavaScript, its types and the docs, and nothing else", () => {
    for (const f of ["package.json", "README.md", "LICENSE", "CHANGELOG.md", "PROTOCOL.md", "SECURITY.md"]) assert.ok(files.includes(f), `${f} is missing`);
    const entries = ["mod", "core/mod", "runtimes/node", "runtimes/deno", "runtimes/bun", "runtimes/hono", "plugins/redis", "client/mod", "plugins/dashboard"];
    for (const e of entries) {
      assert.ok(files.includes(`dist/${e}.js`), `dist/${e}.js is missing`);
      assert.ok(files.includes(`dist/${e}.d.ts`), `dist/${e}.d.ts is missing`);
    }
    const stray = files.filter((f) => !/^(package\.json|README\.md|LICENSE|CHANGELOG\.md|PROTOCOL\.md|SECURITY\.md|dist\/.+\.(js|d\.ts))$/.test(f));
    assert.deepEqual(stray, [], "files a user does not need");
    assert.ok(!files.some((f) => f.startsWith("dist/tests/") || f.startsWith("dist/examples/") || f.startsWith("dist/bench/")));
  });

  it("installs no dependency of its own", async () => {
    const installed = JSON.parse(await readFile(join(app, "node_modules/@duplex/ws/package.json"), "utf8"));
    assert.equal(installed.dependencies, undefined);
    const top = (await readdir(join(app, "node_modules"))).filter((name) => !name.startsWith("."));
    assert.deepEqual(top, ["@duplex"]);
    assert.deepEqual(await readdir(join(app, "node_modules/@duplex")), ["ws"]);
  });

  for (const [name, file] of [["Node", process.execPath], ["Bun", BUN]] as const) {
    it(`loads every subpath on ${name}, without a TypeScript loader`, async () => {
      const { stdout } = await run(file, ["imports.mjs"], { cwd: app, env: userEnv() });
      assert.deepEqual(JSON.parse(stdout), { ...SUBPATH_EXPORTS, rootEngine: [] });
    });

    it(`runs a plain .mjs echo server on ${name} that answers the ws client`, async () => {
      const server = await spawnServer(file, ["echo.mjs"], { cwd: app, env: userEnv() });
      try {
        await echoes(server.url);
      } finally {
        assert.equal(await server.stop(), 0, server.stderr());
      }
    });
  }

  it("type-checks a strict TypeScript consumer against the shipped .d.ts files", async () => {
    await writeFile(join(app, "consumer.ts"), CONSUMER);
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          lib: ["ES2023", "DOM"],
          types: ["node"],
          typeRoots: [join(root, "node_modules/@types")],
        },
        files: ["consumer.ts"],
      }),
    );
    const result = await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: app, env: userEnv() }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    assert.equal(result.code, 0, result.out);
    // Without the @ts-expect-error line, the port given as a string must fail.
    const broken = CONSUMER.replace(/\/\/ @ts-expect-error.*\n/, "");
    await writeFile(join(app, "consumer.ts"), broken);
    const failing = await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: app, env: userEnv() }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    assert.notEqual(failing.code, 0, "a string port type-checked: the types are not reaching the consumer");
    assert.match(failing.out, /consumer\.ts\(\d+,\d+\): error TS2322/);
  });
});

describe("the JSR package, imported by Deno through its deno.json", { skip }, () => {
  let work = "";

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "duplex-jsr-"));
    // Exactly the files `deno publish` would upload: deno.json's publish.include.
    const config = JSON.parse(await readFile(join(root, "deno.json"), "utf8")) as {
      name: string;
      exports: Record<string, string>;
      publish: { include: string[] };
    };
    assert.equal(config.name, "@duplex/ws");
    for (const entry of config.publish.include) {
      await cp(join(root, entry), join(work, "duplex-ws", entry), { recursive: true });
    }
    await writeFile(join(work, "deno.json"), JSON.stringify({ workspace: ["./duplex-ws", "./app"] }));
    await mkdir(join(work, "app"));
    await writeFile(join(work, "app", "deno.json"), JSON.stringify({ name: "@example/app", exports: "./echo.mjs" }));
    await writeFile(join(work, "app", "echo.mjs"), ECHO.replace("process.on(", "Deno.addSignalListener(").replace("process.exit(0)", "Deno.exit(0)"));
    await writeFile(join(work, "app", "imports.mjs"), IMPORTS);
  });

  after(async () => {
    if (work !== "") await rm(work, { recursive: true, force: true });
  });

  it("loads every subpath through the package's exports", async () => {
    const { stdout } = await run(DENO, ["run", "--allow-net", "--allow-env", "--allow-read", "imports.mjs"], {
      cwd: join(work, "app"),
      env: { ...userEnv(), NO_COLOR: "1" },
    });
    assert.deepEqual(JSON.parse(stdout), { ...SUBPATH_EXPORTS, rootEngine: [] });
  });

  it("runs the echo server with --allow-net only, and it answers the ws client", async () => {
    const server = await spawnServer(DENO, ["run", "--allow-net=127.0.0.1", "echo.mjs"], { cwd: join(work, "app"), env: userEnv() });
    try {
      await echoes(server.url);
    } finally {
      assert.equal(await server.stop(), 0, server.stderr());
    }
  });
});
