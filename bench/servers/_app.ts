/**
 * The bench's App (issue 24): one middleware object with `upgrade`, `open`
 * and `message` (`/sub` subscribes, `/pub` publishes, any other path
 * echoes), with `heartbeat()` beside it. Shared by the echo server
 * (`PIPELINE=app`) and `bench/app_cost.ts`, so both measure the same App.
 *
 * @module
 */

import { App, heartbeat, type Middleware } from "../../mod.ts";

/** Its connections' state: what the upgrade decided from the path. */
export type Role = { role: "sub" | "pub" | "echo" };

/** The topic `/sub` subscribes to and `/pub` publishes to. */
export const TOPIC = "bench";

/**
 * The bench App, after `first` (such as `observe()`) when given.
 *
 * @param first Middleware put before everything else.
 * @returns The App.
 */
export function benchApp(...first: Middleware<Role>[]): App<Role> {
  const app = new App<Role>();
  if (first.length > 0) app.use(...first);
  return app
    .use(heartbeat({ intervalMs: 30_000, timeoutMs: 10_000 }))
    .use({
      upgrade(ctx, next) {
        const path = ctx.path;
        ctx.state = { role: path === "/sub" ? "sub" : path === "/pub" ? "pub" : "echo" };
        return next();
      },
      open(ctx) {
        if (ctx.state.role === "sub") ctx.subscribe(TOPIC);
      },
      message(ctx) {
        if (ctx.state.role === "pub") ctx.publish(TOPIC, ctx.data);
        else ctx.send(ctx.data);
      },
    });
}
