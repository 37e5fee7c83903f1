// Type tests: what the compiler infers for apps, routes and codecs. The
// assertions are the `@ts-expect-error` lines and the typed assignments,
// checked by `tsc --noEmit` and `deno check` in `npm run check` (an unused
// `@ts-expect-error` fails the check); the runtime test only makes sure the
// values these types describe exist and route as the types say.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { App, json, type OpenContext, type RouteParams, Router, subprotocols } from "../../mod.ts";

type State = { user: string; joined: number };
type Say = { type: "say"; text: string };

describe("types", () => {
  it("carries the app's state into routes, subprotocols and json, and infers params", () => {
    const seen: string[] = [];
    const app = new App<State>()
      .route(
        "/rooms/:room/files/*",
        {
          upgrade(ctx, next) {
            // Until the upgrade phase fills it, the state is partial.
            // @ts-expect-error: ctx.state.user may be undefined in the upgrade phase
            const early: string = ctx.state.user;
            const maybe: string | undefined = ctx.state.user;
            ctx.state.user = "ada";
            void early, maybe;
            const room: string = ctx.params.room;
            const rest: string = ctx.params["*"];
            // @ts-expect-error: the pattern has no parameter "nope"
            void ctx.params.nope;
            seen.push(room, rest);
            return next();
          },
        },
        subprotocols({
          "chat.v1": json({
            say(ctx, message: Say) {
              const user: string = ctx.state.user;
              // @ts-expect-error: the state's user is a string, carried from App<State>
              const wrong: number = ctx.state.user;
              void user, wrong, message.text;
            },
          }),
        }),
      )
      .route("/plain", {
        open(ctx) {
          const when: number = ctx.state.joined;
          // @ts-expect-error: /plain has no parameters
          void ctx.params.room;
          void when;
        },
      });
    assert.ok(app instanceof App);

    // A Router declared with the state: its routes infer params the same way.
    new Router<State>().route("/a/:id", {
      open(ctx: OpenContext<State, RouteParams<"/a/:id">>) {
        const id: string = ctx.params.id;
        // @ts-expect-error: /a/:id has no parameter "other"
        void ctx.params.other;
        void id;
      },
    });

    // Parameter names of patterns.
    const names: RouteParams<"/x/:a/y/:b"> = { a: "1", b: "2" };
    // @ts-expect-error: "c" is not a parameter of /x/:a/y/:b
    const extra: RouteParams<"/x/:a/y/:b"> = { a: "1", b: "2", c: "3" };
    assert.deepEqual(names, { a: "1", b: "2" });
    void extra;
    assert.deepEqual(seen, []);
  });
});
