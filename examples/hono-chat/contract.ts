// The chat's contract: the calls and events a duplex.v1 client (the page)
// has besides the rooms' topics, declared once with Valibot schemas. The
// server (app.ts) serves it with `serveContract`; a TypeScript client gets
// its types with `import type { chat } from "./contract.ts"` and
// `new DuplexClient<typeof chat>(url)`, and nothing of Valibot reaches it.
//
//   calls   history({ room, limit? }) → Message[]  the room's last messages, oldest first (idempotent)
//           members({ room }) → string[]            who is in the room now, sorted (idempotent)
//   client  typing({ room })                         "I am typing" (the page sends it at most every 2 s)
//   server  typing({ room, name })                   someone else in the room is typing
//           presence({ room, names })                who is in the room, after each join and leave
import * as v from "valibot";
import { contract } from "../../mod.ts";

/** The longest room or name accepted, in characters. */
export const MAX_NAME = 64;

/** A room's name. */
export const Room = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_NAME));

/** A stored message, as the room's topic holds it. */
export const Message = v.object({ id: v.number(), from: v.string(), text: v.string(), at: v.string() });

/** The chat's contract. */
export const chat = contract({
  client: {
    typing: v.object({ room: Room }),
  },
  server: {
    typing: v.object({ room: Room, name: v.string() }),
    presence: v.object({ room: Room, names: v.array(v.string()) }),
  },
  calls: {
    history: {
      input: v.object({ room: Room, limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100))) }),
      output: v.array(Message),
      idempotent: true,
    },
    members: { input: v.object({ room: Room }), output: v.array(v.string()), idempotent: true },
  },
});
