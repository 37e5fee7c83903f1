// What plain JavaScript gets instead of a type checker: handlers, middleware
// and option names refused with a suggestion, values shown with their type,
// and a close code that may not be sent pointing at what to do instead.
// Each refusal is asserted with its exact message.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { closePayload } from "../../core/close_code.ts";
import { UsageError } from "../../core/errors.ts";
import { App, CloseError, heartbeat, Router } from "../../mod.ts";
import { checkHandler, checkMiddleware, checkOptions, describeValue, didYouMean, HOOKS } from "../../plugins/_check.ts";
import { PHASES } from "../../plugins/pipeline.ts";

/** Asserts a UsageError with this code and exactly this message. */
function refuses(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `a UsageError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.message, message);
    return true;
  });
}

describe("describeValue", () => {
  it("shows each value with its type", () => {
    assert.equal(describeValue("8090"), 'the string "8090"');
    assert.equal(describeValue(70000), "the number 70000");
    assert.equal(describeValue(NaN), "the number NaN");
    assert.equal(describeValue(null), "null");
    assert.equal(describeValue(undefined), "undefined");
    assert.equal(describeValue(true), "true");
    assert.equal(describeValue(10n), "the bigint 10n");
    assert.equal(describeValue(Symbol("x")), "a symbol");
    assert.equal(describeValue(() => {}), "a function");
    assert.equal(describeValue({ a: 1 }), "an object");
    assert.equal(describeValue(Object.create(null)), "an object");
    assert.equal(describeValue([1]), "an array");
    assert.equal(describeValue(new Map()), "an instance of Map");
  });

  it("shortens a long string", () => {
    assert.equal(describeValue("x".repeat(100)), `the string "${"x".repeat(40)}…"`);
  });
});

describe("didYouMean", () => {
  it("maps Hono and DOM style hook names to Duplex's", () => {
    assert.equal(didYouMean("onMessage", HOOKS), "message");
    assert.equal(didYouMean("onOpen", HOOKS), "open");
    assert.equal(didYouMean("onClose", HOOKS), "close");
    assert.equal(didYouMean("onError", HOOKS), "error");
    assert.equal(didYouMean("onmessage", HOOKS), "message");
  });

  it("maps other libraries' option names, case and typos", () => {
    const names = ["maxMessageBytes", "maxFrameBytes", "protocols", "idleTimeoutMs", "port"];
    assert.equal(didYouMean("maxMessageSize", names), "maxMessageBytes");
    assert.equal(didYouMean("maxPayload", names), "maxMessageBytes");
    assert.equal(didYouMean("maxPayloadLength", names), "maxMessageBytes");
    assert.equal(didYouMean("MAXMESSAGEBYTES", names), "maxMessageBytes");
    assert.equal(didYouMean("maxMesageBytes", names), "maxMessageBytes");
    assert.equal(didYouMean("idleTimeout", names), "idleTimeoutMs");
    assert.equal(didYouMean("subprotocols", names), "protocols");
    assert.equal(didYouMean("mesage", HOOKS), "message");
  });

  it("suggests nothing when nothing is close", () => {
    assert.equal(didYouMean("banana", HOOKS), undefined);
    assert.equal(didYouMean("x", ["port"]), undefined);
  });
});

describe("checkHandler", () => {
  it("accepts objects of hooks and class instances (an App)", () => {
    checkHandler({}, "serve()");
    checkHandler({ message() {}, close() {} }, "serve()");
    checkHandler(new App(), "serve()");
  });

  it("refuses a function, with the shape to pass instead", () => {
    refuses(
      () => checkHandler(() => {}, "serve()"),
      "ERR_INVALID_HANDLER",
      "Invalid handler: serve() takes an object of hooks, such as { message(conn, data) { … } }, got a function",
    );
  });

  it("refuses what is not an object, with its type", () => {
    refuses(() => checkHandler(null, "serve()"), "ERR_INVALID_HANDLER", "Invalid handler: serve() takes an object of hooks, got null");
    refuses(() => checkHandler(undefined, "serve()"), "ERR_INVALID_HANDLER", "Invalid handler: serve() takes an object of hooks, got undefined");
    refuses(() => checkHandler("echo", "serve()"), "ERR_INVALID_HANDLER", 'Invalid handler: serve() takes an object of hooks, got the string "echo"');
  });

  it("refuses an unknown hook with a suggestion", () => {
    refuses(() => checkHandler({ onMessage() {} }, "serve()"), "ERR_INVALID_HANDLER", 'Invalid handler: "onMessage" is not a hook, did you mean "message"?');
    refuses(() => checkHandler({ onOpen() {} }, "serve()"), "ERR_INVALID_HANDLER", 'Invalid handler: "onOpen" is not a hook, did you mean "open"?');
    refuses(() => checkHandler({ banana() {} }, "serve()"), "ERR_INVALID_HANDLER", 'Invalid handler: "banana" is not a hook');
  });

  it("refuses a hook that is not a function, with its type", () => {
    refuses(() => checkHandler({ message: "echo" }, "serve()"), "ERR_INVALID_HANDLER", 'Invalid handler: message must be a function, got the string "echo"');
  });
});

describe("checkOptions", () => {
  const known = ["maxMessageBytes", "port"];

  it("accepts known names and no options", () => {
    checkOptions(undefined, known, "serve()");
    checkOptions({}, known, "serve()");
    checkOptions({ port: 0, maxMessageBytes: 1 }, known, "serve()");
  });

  it("refuses an unknown name with a suggestion", () => {
    refuses(
      () => checkOptions({ maxMessageSize: 1 }, known, "serve()"),
      "ERR_INVALID_OPTION",
      'Invalid option: "maxMessageSize" is not an option, did you mean "maxMessageBytes"?',
    );
    refuses(() => checkOptions({ banana: 1 }, known, "serve()"), "ERR_INVALID_OPTION", 'Invalid option: "banana" is not an option');
  });

  it("refuses options that are not an object", () => {
    refuses(() => checkOptions(8080, known, "serve()"), "ERR_INVALID_OPTION", "Invalid option: the options of serve() must be an object, got the number 8080");
    refuses(() => checkOptions(null, known, "serve()"), "ERR_INVALID_OPTION", "Invalid option: the options of serve() must be an object, got null");
  });
});

describe("App.use and routes", () => {
  it("refuses an object middleware with an unknown key, with a suggestion", () => {
    refuses(
      () => new App().use({ onMessage() {} } as never),
      "ERR_INVALID_MIDDLEWARE",
      'Invalid middleware: "onMessage" is not a phase, did you mean "message"?',
    );
    refuses(
      () => new App().use({ message: () => {}, onClose() {} } as never),
      "ERR_INVALID_MIDDLEWARE",
      'Invalid middleware: "onClose" is not a phase, did you mean "close"?',
    );
  });

  it("refuses an object middleware with no phase", () => {
    refuses(
      () => new App().use({}),
      "ERR_INVALID_MIDDLEWARE",
      "Invalid middleware: the object has no phase, expected one of upgrade, open, message, send, ping, pong, drain, shutdown, close, error",
    );
  });

  it("refuses an unknown key in a route's middleware, but takes {} to accept a route", () => {
    refuses(
      () => new Router().route("/a", { onOpen() {} } as never),
      "ERR_INVALID_MIDDLEWARE",
      'Invalid middleware: "onOpen" is not a phase, did you mean "open"?',
    );
    new App().use(new Router().route("/a", {}));
  });

  it("shows the type of what is not middleware", () => {
    refuses(() => new App().use(null as never), "ERR_INVALID_MIDDLEWARE", "Invalid middleware: expected a function or an object of phases, got null");
    refuses(
      () => new App().use({ message: "hi" } as never),
      "ERR_INVALID_MIDDLEWARE",
      'Invalid middleware: message must be a function, got the string "hi"',
    );
  });

  it("takes the built-in middleware, routers and functions as before", () => {
    new App().use(heartbeat(), new Router(), (_ctx, next) => next(), { open: () => {} });
    checkMiddleware(new Router(), PHASES, true);
  });
});

describe("messages that show a value show its type", () => {
  it("an option value", () => {
    refuses(
      () => heartbeat({ intervalMs: "1000" as never }),
      "ERR_INVALID_OPTION",
      'Invalid option: intervalMs must be a positive number, got the string "1000"',
    );
  });
});

describe("close codes that may not be sent", () => {
  it("1006 points at terminate() and the application range", () => {
    refuses(
      () => closePayload(1006),
      "ERR_INVALID_CLOSE_CODE",
      "Invalid close code: 1006 is only reported, never sent (call terminate() to drop the connection; the application's own codes are 4000 to 4999)",
    );
    refuses(
      () => new CloseError(1005),
      "ERR_INVALID_CLOSE_CODE",
      "Invalid close code: 1005 is only reported, never sent (call terminate() to drop the connection; the application's own codes are 4000 to 4999)",
    );
  });

  it("other codes point at the application range", () => {
    refuses(() => closePayload(2000), "ERR_INVALID_CLOSE_CODE", "Invalid close code: 2000 may not be sent (the application's own codes are 4000 to 4999)");
    refuses(
      () => closePayload("4000" as never),
      "ERR_INVALID_CLOSE_CODE",
      `Invalid close code: expected an integer, got the string "4000" (the application's own codes are 4000 to 4999)`,
    );
  });
});
