// The contract messages of duplex.v1 (PROTOCOL.md, "Calls and events"):
// each one encoded and decoded back, every field checked, nothing thrown.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type ClientMessage, decodeClient, decodeServer, encode, MAX_DEPTH, nestedDeeper, type ServerMessage } from "../../client/_wire.ts";

const nested = (depth: number): string => "[".repeat(depth) + "]".repeat(depth);

describe("contract wire messages", () => {
  it("round-trips every client message", () => {
    const messages: ClientMessage[] = [
      { type: "call", id: 1, name: "history", input: { room: "a", n: [1, 2] } },
      { type: "call", id: 2, name: "history", input: null, key: "c1:2" },
      { type: "call", id: 3, name: "tail", input: "x", credit: 16 },
      { type: "cancel", id: 3 },
      { type: "credit", id: 3, n: 8 },
      { type: "emit", name: "typing", data: { room: "a" } },
    ];
    for (const m of messages) assert.deepEqual(decodeClient(encode(m)), m);
    // An absent input or data is undefined.
    assert.deepEqual(decodeClient('{"type":"call","id":4,"name":"ping"}'), { type: "call", id: 4, name: "ping", input: undefined });
    assert.deepEqual(decodeClient('{"type":"emit","name":"hi"}'), { type: "emit", name: "hi", data: undefined });
  });

  it("round-trips every server message", () => {
    const messages: ServerMessage[] = [
      { type: "result", id: 1, value: [{ text: "a" }] },
      { type: "item", id: 2, value: 0 },
      { type: "event", name: "said", data: { text: "hi" } },
      { type: "error", id: 3, code: "invalid", message: "Invalid input", issues: [{ message: "Expected string", path: ["room", 0] }, { message: "x" }] },
      { type: "error", id: 4, code: "failed", message: "TooFast", error: { name: "TooFast", data: { retryInMs: 5 } } },
      { type: "error", id: 5, code: "failed", message: "The call failed", error: { name: "Error" } },
      { type: "error", id: 6, code: "not_found", message: "No such call" },
      { type: "error", id: 7, code: "cancelled", message: "Cancelled" },
      { type: "error", id: 8, code: "busy", message: "Too many calls in flight" },
    ];
    for (const m of messages) assert.deepEqual(decodeServer(encode(m)), m);
    assert.deepEqual(decodeServer('{"type":"result","id":1}'), { type: "result", id: 1, value: undefined });
  });

  it("refuses malformed contract messages with a reason, never a throw", () => {
    const client = [
      '{"type":"call","id":1}',
      '{"type":"call","id":1,"name":""}',
      `{"type":"call","id":1,"name":"${"n".repeat(129)}"}`,
      '{"type":"call","id":-1,"name":"a"}',
      '{"type":"call","id":1,"name":"a","key":""}',
      '{"type":"call","id":1,"name":"a","key":5}',
      '{"type":"call","id":1,"name":"a","credit":0}',
      '{"type":"call","id":1,"name":"a","credit":1.5}',
      '{"type":"cancel"}',
      '{"type":"credit","id":1}',
      '{"type":"credit","id":1,"n":-2}',
      '{"type":"emit","data":1}',
      '{"type":"emit","name":7}',
      '{"type":"calls","id":1,"name":"a"}',
    ];
    for (const text of client) assert.equal(typeof decodeClient(text), "string", text);
    const server = [
      '{"type":"result"}',
      '{"type":"item","id":"1","value":1}',
      '{"type":"event","data":1}',
      '{"type":"error","id":1,"code":"failed","message":"x"}',
      '{"type":"error","id":1,"code":"failed","message":"x","error":{"data":1}}',
      '{"type":"error","id":1,"code":"invalid","message":"x","issues":[{"path":["a"]}]}',
      '{"type":"error","id":1,"code":"invalid","message":"x","issues":[{"message":"m","path":[{}]}]}',
      '{"type":"error","id":1,"code":"invalid","message":"x","issues":"no"}',
      '{"type":"error","id":1,"code":"nope","message":"x"}',
    ];
    for (const text of server) assert.equal(typeof decodeServer(text), "string", text);
  });

  it("refuses JSON nested deeper than the limit before parsing it", () => {
    assert.equal(nestedDeeper(nested(MAX_DEPTH), MAX_DEPTH), false);
    assert.equal(nestedDeeper(nested(MAX_DEPTH + 1), MAX_DEPTH), true);
    // Brackets inside strings, escaped quotes included, do not count.
    assert.equal(nestedDeeper(JSON.stringify({ s: "[[[[\\\"[[[[" }), 2), false);
    const deep = `{"type":"call","id":1,"name":"a","input":${nested(100_000)}}`;
    assert.match(decodeClient(deep) as string, /nested deeper than 64 levels/);
    const deepEvent = `{"type":"emit","name":"a","data":${"{\"a\":".repeat(100_000)}1${"}".repeat(100_000)}}`;
    assert.match(decodeClient(deepEvent) as string, /nested deeper/);
  });

  it("measures nesting as JSON.parse would build it, whatever the strings hold", () => {
    const depthOf = (v: unknown): number =>
      typeof v === "object" && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0;
    const tricky = fc.oneof(fc.string(), fc.constantFrom('"', "\\", '\\"', "[{", "}]", '\\\\"[['));
    const value = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: "small" }, tricky, fc.integer(), fc.array(tie("v"), { maxLength: 3 }), fc.dictionary(tricky, tie("v"), { maxKeys: 3 })),
    })).v;
    fc.assert(fc.property(value, fc.integer({ min: 0, max: 6 }), (v, max) => {
      assert.equal(nestedDeeper(JSON.stringify(v), max), depthOf(v) > max);
    }), { numRuns: 2000 });
  });

  it("keeps binary data to publish and message: an event's object data stays JSON", () => {
    const text = encode({ type: "emit", name: "bytes", data: { a: 1 } });
    assert.equal(text, '{"type":"emit","name":"bytes","data":{"a":1}}');
  });
});
