// The chat's memory: the last messages of each room, numbered in the order
// the server accepted them. An id is the time it was accepted in ms since the
// epoch, or one more than the last id when that is larger: ids grow across
// rooms and across restarts of the process (as long as its clock does not go
// back), so a client that stays open through a restart can still
// de-duplicate and order by id.

/** A message as the server sends it: `{ type: "said", id, room, from, text, at }`. */
export interface Said {
  readonly type: "said";
  /** Grows with every message accepted, in any room: `max(last id + 1, Date.now())`. */
  readonly id: number;
  readonly room: string;
  readonly from: string;
  readonly text: string;
  /** When the server accepted it, as an ISO 8601 timestamp. */
  readonly at: string;
}

/** The last `limit` messages of every room, in memory. */
export class Rooms {
  readonly #history = new Map<string, Said[]>();
  readonly #limit: number;
  #lastId = 0;

  /**
   * @param limit How many messages each room keeps; the oldest go first.
   * @throws {RangeError} When `limit` is not a positive integer.
   */
  constructor(limit = 100) {
    if (!Number.isInteger(limit) || limit <= 0) throw new RangeError(`Invalid limit: ${limit} is not a positive integer`);
    this.#limit = limit;
  }

  /**
   * Records a message and gives it the next id.
   *
   * @returns The message, ready to publish.
   */
  add(room: string, from: string, text: string, now: Date = new Date()): Said {
    const id = this.#lastId = Math.max(this.#lastId + 1, now.getTime());
    const said: Said = { type: "said", id, room, from, text, at: now.toISOString() };
    let history = this.#history.get(room);
    if (history === undefined) this.#history.set(room, history = []);
    history.push(said);
    if (history.length > this.#limit) history.splice(0, history.length - this.#limit);
    return said;
  }

  /** A copy of the room's history, oldest first. */
  history(room: string): Said[] {
    return [...(this.#history.get(room) ?? [])];
  }
}
