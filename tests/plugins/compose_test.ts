// compose(): order, sync/async results, errors and nesting.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageError } from "../../core/errors.ts";
import { compose, type Handle } from "../../plugins/compose.ts";
import { isThenable } from "../../plugins/_thenable.ts";

type Log = string[];

function link(name: string): Handle<Log> {
  return (log, next) => {
    log.push(`${name} in`);
    const result = next();
    log.push(`${name} out`);
    return result;
  };
}

function asyncLink(name: string): Handle<Log> {
  return async (log, next) => {
    log.push(`${name} in`);
    await Promise.resolve();
    await next();
    log.push(`${name} out`);
  };
}

describe("compose", () => {
  it("runs links in order on the way in and in reverse on the way out, then last", () => {
    const log: Log = [];
    const chain = compose<Log>([link("a"), link("b"), link("c")]);
    chain(log, () => void log.push("last"));
    assert.deepEqual(log, ["a in", "b in", "c in", "last", "c out", "b out", "a out"], "onion order");
  });

  it("keeps a chain of sync links sync: it returns undefined, not a promise", () => {
    const log: Log = [];
    const result = compose<Log>([link("a"), link("b")])(log);
    assert.equal(result, undefined, "a sync chain must not return a promise");
    assert.deepEqual(log, ["a in", "b in", "b out", "a out"], "everything ran before the call returned");
  });

  it("returns a promise when a link is async, and runs an async link's tail after the rest", async () => {
    const log: Log = [];
    const chain = compose<Log>([asyncLink("a"), link("b"), asyncLink("c")]);
    const result = chain(log, () => void log.push("last"));
    assert.ok(result instanceof Promise, "an async chain returns a promise");
    assert.ok(isThenable(result));
    assert.deepEqual(log, ["a in"], "only the first link ran synchronously (it awaited before next)");
    await result;
    // b is sync: its tail runs as soon as next() hands back c's promise; a awaited it.
    assert.deepEqual(log, ["a in", "b in", "c in", "b out", "last", "c out", "a out"]);
  });

  it("returns a promise from a sync link that returns next() when a later link is async", async () => {
    const log: Log = [];
    const result = compose<Log>([(_l, next) => next(), asyncLink("b")])(log);
    assert.ok(result instanceof Promise, "the sync link passed on the async link's promise");
    await result;
    assert.deepEqual(log, ["b in", "b out"]);
  });

  it("stops when a link does not call next()", () => {
    const log: Log = [];
    compose<Log>([link("a"), (l) => void l.push("stop"), link("never")])(log, () => void log.push("last"));
    assert.deepEqual(log, ["a in", "stop", "a out"], "neither later links nor last ran");
  });

  it("reports a second next() in a sync link to onError as ERR_NEXT_TWICE", () => {
    const errors: unknown[] = [];
    const ctx: Log = [];
    let lastRuns = 0;
    const chain = compose<Log>([(_l, next) => {
      next();
      next();
    }], (err, c) => {
      assert.equal(c, ctx, "onError receives the chain's context");
      errors.push(err);
    });
    assert.doesNotThrow(() => chain(ctx, () => void lastRuns++), "with onError, the chain never throws");
    assert.equal(lastRuns, 1, "the rest of the chain ran only once");
    assert.equal(errors.length, 1, "onError called once");
    assert.ok(errors[0] instanceof UsageError, "a UsageError");
    assert.equal((errors[0] as UsageError).code, "ERR_NEXT_TWICE");
  });

  it("reports a second next() in an async link to onError as ERR_NEXT_TWICE", async () => {
    const errors: unknown[] = [];
    const chain = compose<Log>([async (_l, next) => {
      await next();
      await next();
    }], (err) => void errors.push(err));
    const result = chain([]);
    assert.ok(result instanceof Promise);
    await assert.doesNotReject(result as Promise<void>, "with onError, the chain never rejects");
    assert.equal(errors.length, 1, "onError called once");
    assert.equal((errors[0] as UsageError).code, "ERR_NEXT_TWICE");
  });

  it("refuses a second next() even after the rest of the chain stopped early", () => {
    const errors: unknown[] = [];
    compose<Log>([(_l, next) => {
      next();
      next();
    }, () => {}], (err) => void errors.push(err))([]);
    assert.equal((errors[0] as UsageError | undefined)?.code, "ERR_NEXT_TWICE");
  });

  it("sends a sync throw to onError once, and the call does not throw", () => {
    const errors: unknown[] = [];
    const boom = new Error("boom");
    const log: Log = [];
    const chain = compose<Log>([link("a"), () => {
      throw boom;
    }], (err) => void errors.push(err));
    assert.equal(chain(log), undefined);
    assert.deepEqual(errors, [boom], "exactly once, the very error");
    assert.deepEqual(log, ["a in"], "the throw unwound through a");
  });

  it("sends a rejection to onError once, and the promise resolves", async () => {
    const errors: unknown[] = [];
    const boom = new Error("later");
    const chain = compose<Log>([asyncLink("a"), async () => {
      await Promise.resolve();
      throw boom;
    }], (err) => void errors.push(err));
    const result = chain([]);
    assert.ok(result instanceof Promise);
    await result;
    assert.deepEqual(errors, [boom], "exactly once, the very error");
  });

  it("propagates a throw and a rejection to the caller without onError", async () => {
    const boom = new Error("sync");
    assert.throws(() => compose<Log>([() => {
      throw boom;
    }])([]), (err) => err === boom);
    const later = new Error("async");
    await assert.rejects(
      compose<Log>([async () => {
        await Promise.resolve();
        throw later;
      }])([]) as Promise<void>,
      (err) => err === later,
    );
  });

  it("nests: a composed chain runs inside another, with the outer rest as its last", async () => {
    const log: Log = [];
    const inner = compose<Log>([asyncLink("i1"), asyncLink("i2")]);
    const outer = compose<Log>([asyncLink("o1"), (l, next) => inner(l, next), asyncLink("o2")]);
    const result = outer(log, () => void log.push("end"));
    assert.ok(result instanceof Promise, "the async inner link makes the whole chain async");
    await result;
    assert.deepEqual(log, ["o1 in", "i1 in", "i2 in", "o2 in", "end", "o2 out", "i2 out", "i1 out", "o1 out"]);
  });

  it("nests sync chains synchronously", () => {
    const log: Log = [];
    const inner = compose<Log>([link("i")]);
    const outer = compose<Log>([(l, next) => inner(l, next), link("o")]);
    assert.equal(outer(log), undefined);
    assert.deepEqual(log, ["i in", "o in", "o out", "i out"]);
  });

  it("lets an inner chain's error reach the outer onError once", async () => {
    const errors: unknown[] = [];
    const boom = new Error("inner");
    const inner = compose<Log>([async () => {
      await Promise.resolve();
      throw boom;
    }]);
    const outer = compose<Log>([(l, next) => inner(l, next)], (err) => void errors.push(err));
    await outer([]);
    assert.deepEqual(errors, [boom]);
  });

  it("refuses what is not a function with ERR_INVALID_MIDDLEWARE", () => {
    for (const bad of [undefined, null, 1, "x", {}]) {
      assert.throws(
        () => compose<Log>([link("ok"), bad as unknown as Handle<Log>]),
        (err) => err instanceof UsageError && err.code === "ERR_INVALID_MIDDLEWARE",
        `compose must refuse ${String(bad)}`,
      );
    }
  });

  it("isThenable tells promises and thenables from other values", () => {
    assert.equal(isThenable(Promise.resolve()), true);
    assert.equal(isThenable({ then() {} }), true);
    for (const value of [undefined, null, 0, "then", {}, { then: 1 }]) assert.equal(isThenable(value), false, String(value));
  });
});
