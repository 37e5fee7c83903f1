// The black-box suites (_suite.ts, and _app_suite.ts for the app pipeline)
// against every adapter and path this runtime has (see _targets.ts).
import { runAppSuite } from "./_app_suite.ts";
import { runLimitsSuite } from "./_limits_suite.ts";
import { runSuite } from "./_suite.ts";
import { targets } from "./_targets.ts";

for (const target of targets) {
  runSuite(target);
  runAppSuite(target);
  runLimitsSuite(target);
}
