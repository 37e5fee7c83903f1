// Child processes of a bench script (servers under test): every one is
// tracked and killed on any exit path, a signal included, so that no server
// outlives the script that started it.
import type { ChildProcess } from "node:child_process";
import process from "node:process";

/**
 * Kills every child in the returned set when the process exits, and turns
 * SIGINT, SIGTERM and SIGHUP into that exit (with the usual 128 + n code).
 *
 * @param tag Shown in the message a signal prints.
 * @returns The set to add children to (and remove them from once they exited).
 */
export function killedOnExit(tag: string): Set<ChildProcess> {
  const children = new Set<ChildProcess>();
  process.on("exit", () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  });
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
    process.once(signal, () => {
      console.error(`\n${tag}: ${signal}: stopping`);
      process.exit(code);
    });
  }
  return children;
}
