/** jobsmanager: a database-driven cron job scheduler. */
import { runCli } from "./cli/app.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
