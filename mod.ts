/**
 * Duplex: one WebSocket server framework for Node, Deno and Bun. The root
 * entry is what an application imports: `serve()`, which starts the right
 * server for the runtime it runs on; the {@linkcode Handler} hooks and the
 * {@linkcode Connection} they receive; the {@linkcode App} pipeline with its
 * routers, auth, heartbeat, JSON codec, pub/sub and recoverable topics
 * ({@linkcode reliable}, the server side of `duplex.v1`) and typed, validated
 * calls and events ({@linkcode contract}, {@linkcode serveContract}); close
 * codes and errors.
 *
 * Other entry points:
 * - `@duplex/ws/core`: the sans-IO RFC 6455 engine on its own;
 * - `@duplex/ws/node`, `@duplex/ws/deno`, `@duplex/ws/bun`: each runtime's
 *   adapters (raw sockets, native servers, attaching to a server you own);
 * - `@duplex/ws/hono`: `upgradeWebSocket()` for Hono routes;
 * - `@duplex/ws/redis`: the Redis backplane for pub/sub across processes.
 *
 * @example
 * ```ts
 * import { CloseCode, serve } from "@duplex/ws";
 *
 * const server = await serve({
 *   message(conn, data) {
 *     if (typeof data !== "string") return conn.close(CloseCode.UnsupportedData, "text only");
 *     conn.send(data.toUpperCase());
 *   },
 * }, { port: 0 });
 * console.log(`listening on ${server.url}`);
 * await server.close();
 * ```
 *
 * @module
 */

// Serving
export { runtime, type RuntimeName, serve, type ServeOptions, type TransportName } from "./runtimes/serve.ts";
export type { ListenOptions, Server, TlsCertificate } from "./runtimes/_server.ts";

// The hooks contract
export {
  type Clock,
  type CloseInfo,
  type Connection,
  type ConnectionOptions,
  type Handler,
  type PerMessageDeflateOptions,
  type RateLimitOptions,
  type SendOptions,
  systemClock,
  type UpgradeAnswer,
} from "./plugins/hooks.ts";

// Close codes, errors, and the types the contract refers to
export { CloseCode } from "./core/close_code.ts";
export { ProtocolError, UsageError } from "./core/errors.ts";
export { ReadyState } from "./core/state.ts";
export type { EngineOptions, MessageData } from "./core/engine.ts";
export type { DeflateNegotiation, DeflateParams } from "./core/deflate.ts";
export type { UpgradeRequest } from "./core/handshake.ts";
export type { PreparedMessage } from "./core/prepared.ts";
export { CloseError, HttpError } from "./plugins/errors.ts";

// Apps: middleware, routers, codecs
export { App, type AppOptions, type ErrorHandler } from "./plugins/app.ts";
export type { Composed, Handle, Next } from "./plugins/compose.ts";
export type { Chains, Middleware, Phase, PhaseContext, Phases, Pipeline } from "./plugins/pipeline.ts";
export type {
  CloseContext,
  ControlContext,
  DrainContext,
  ErrorContext,
  EventContext,
  MessageContext,
  OpenContext,
  Peer,
  PeerEvent,
  SendContext,
  ShutdownContext,
  UpgradeContext,
} from "./plugins/context.ts";
export { type Branching, Router, type SubprotocolOptions, subprotocols } from "./plugins/router.ts";
export type { ParamNames, Params, RouteParams } from "./plugins/params.ts";
export { json, type JsonHandlers, type JsonOptions, type JsonSchemaOptions, type ValidatedJsonHandlers } from "./plugins/codec.ts";

// Auth and liveness
export {
  allowOrigins,
  type AuthOptions,
  authenticate,
  authenticateWithin,
  type FirstMessageAuthOptions,
  fromBearer,
  fromCookie,
  fromProtocol,
  fromQuery,
  type OriginOptions,
  type TokenSource,
  type Verify,
} from "./plugins/auth.ts";
export { heartbeat, type HeartbeatOptions } from "./plugins/heartbeat.ts";
export {
  type ObserveAttributes,
  type ObservedClose,
  type ObservedConnection,
  type ObserveMeter,
  type ObserveObservable,
  type ObserveOptions,
  type ObserveOtelApi,
  type Observer,
  type ObserveSnapshot,
  type ObserveSpan,
  type ObserveTotals,
  type ObserveTracer,
  observe,
} from "./plugins/observe.ts";

// Pub/sub
export {
  type Backplane,
  type BackplaneLink,
  type Hub,
  InProcessBackplane,
  type PublishOptions,
  type PubSubOptions,
  type PubSubStats,
} from "./plugins/pubsub.ts";

// Reliable delivery (duplex.v1)
export { reliable, type Reliable, type ReliableOptions, type ReliableStats } from "./plugins/reliable.ts";
export { type Appended, type LogEntry, type LogRead, MemoryTopicLog, type MemoryTopicLogOptions, type TopicLog } from "./plugins/topic_log.ts";
export type { From, Gap, GapReason, Position, WireErrorCode, WireFailure, WireIssue } from "./client/_wire.ts";

// Contracts: typed, validated events and calls (duplex.v1)
export {
  CallError,
  type CallContext,
  type CallErrorSchemas,
  type CallHandler,
  type CallHandlers,
  type ClientEventContext,
  contract,
  type ContractServer,
  type EventHandlers,
  type HandlerInput,
  type HandlerOutput,
  type ServeContractOptions,
  serveContract,
} from "./plugins/contract.ts";
export type {
  CallDefinition,
  CallDefinitionOf,
  CallErrors,
  CallInput,
  CallName,
  CallOutput,
  ClientEventData,
  ClientEventName,
  Contract,
  ContractDefinition,
  ContractOf,
  EventSchemas,
  IdempotentCallName,
  InputOf,
  IsStream,
  OutputOf,
  ServerEventData,
  ServerEventName,
  StandardSchemaV1,
  StandardTypedV1,
} from "./client/_contract.ts";
