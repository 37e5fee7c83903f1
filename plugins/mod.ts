/**
 * The Duplex pipeline: the {@linkcode App}, koa-style {@linkcode compose},
 * routers by path and subprotocol, a JSON codec, auth helpers, heartbeat
 * and typed errors. Runtime-neutral: it imports only `core/`, and runs on
 * every adapter through the {@linkcode Handler} contract.
 *
 * @example
 * ```ts
 * import { App, authenticate, heartbeat, json, Router, subprotocols } from "@duplex/ws";
 *
 * type Messages = { say: { type: "say"; text: string } };
 * const app = new App()
 *   .use(heartbeat({ intervalMs: 30_000, timeoutMs: 10_000 }))
 *   .use(new Router().route(
 *     "/chat/:room",
 *     authenticate((token) => token === "secret"),
 *     subprotocols({ "chat.v1": json<Messages>({ say: (ctx, m) => void ctx.send(m.text) }) }),
 *   ));
 * ```
 *
 * @module
 */

export { type Composed, compose, type Handle, isThenable, type Next } from "./compose.ts";
export {
  CloseContext,
  ControlContext,
  DrainContext,
  ErrorContext,
  type EventContext,
  MessageContext,
  OpenContext,
  parseCookies,
  type Peer,
  PeerEvent,
  SendContext,
  ShutdownContext,
  UpgradeContext,
} from "./context.ts";
export { CloseError, HttpError } from "./errors.ts";
export {
  type Clock,
  type CloseInfo,
  type ConnectionOptions,
  type Context,
  type Handler,
  type NativeTopics,
  type NativeTopicServer,
  type PerMessageDeflateOptions,
  type RateLimitOptions,
  type SendOptions,
  systemClock,
  type UpgradeAnswer,
} from "./hooks.ts";
export { type Middleware, type Phase, type PhaseContext, PHASES, type Phases, Pipeline } from "./pipeline.ts";
export { App, type AppOptions, type ErrorHandler } from "./app.ts";
export {
  type Backplane,
  type BackplaneLink,
  checkTopic,
  Hub,
  type HubNativeAccess,
  InProcessBackplane,
  type PublishOptions,
  type PubSubOptions,
  type PubSubStats,
} from "./pubsub.ts";
export {
  BackplaneError,
  RedisBackplane,
  type RedisBackplaneOptions,
  type RedisBackplaneStats,
  type RedisClient,
} from "./redis.ts";
export { Branching, Router, type SubprotocolOptions, subprotocols } from "./router.ts";
export { json, type JsonHandlers, type JsonOptions } from "./codec.ts";
export {
  allowOrigins,
  type AuthOptions,
  authenticate,
  authenticateWithin,
  bearerAuth,
  cookieAuth,
  type FirstMessageAuthOptions,
  fromBearer,
  fromCookie,
  fromProtocol,
  fromQuery,
  type OriginOptions,
  protocolAuth,
  queryAuth,
  type TokenSource,
  type Verify,
} from "./auth.ts";
export { heartbeat, type HeartbeatOptions } from "./heartbeat.ts";
