/** jobsmanager: a database-driven cron job scheduler. */
import { runCli } from "./cli/app.ts";
import { programArgs } from "./cli/argv.ts";

if (import.meta.main) {
  const { args, utf8 } = programArgs();
  Deno.exit(await runCli(args, utf8));
}
