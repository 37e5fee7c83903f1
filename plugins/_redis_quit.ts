/**
 * Closing a Redis client the way both Redis integrations do (the Pub/Sub
 * backplane and the Streams log): `QUIT`, or a disconnect when it fails or
 * takes too long.
 *
 * @module
 */

/** How long `QUIT` may take before the client is disconnected. */
const QUIT_TIMEOUT_MS = 2000;

/** The part of a client that closing it uses. */
export interface Quittable {
  readonly status?: string;
  quit(): Promise<unknown>;
  disconnect(): void;
}

/**
 * Quits a client, or disconnects it when QUIT fails or takes too long.
 *
 * @param client The client; one that has already ended is left as it is.
 * @returns Once the client is closed.
 */
export function quit(client: Quittable): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      client.disconnect();
      resolve();
    }, QUIT_TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    if (client.status === "end") return done();
    let quitting;
    try {
      quitting = client.quit();
    } catch {
      client.disconnect();
      return done();
    }
    quitting.then(done, () => {
      client.disconnect();
      done();
    });
  });
}
