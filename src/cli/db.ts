/** `jobsmanager db migrate` and `jobsmanager reload`. */
import { Command } from "commander";
import { SCHEMA_VERSION } from "../store/migrations.ts";
import type { ContextOf } from "./context.ts";

export function dbCommand(contextOf: ContextOf): Command {
  const db = new Command("db").description("database maintenance");
  db.command("migrate").description("create or upgrade the schema (safe to run at any time)")
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      // Not withStore: that migrates silently; this reports what it did.
      const store = ctx.openStore();
      try {
        const report = await store.migrate();
        ctx.print(
          () =>
            report.applied.length === 0
              ? `${store.description}: schema already at version ${report.to}`
              : `${store.description}: schema migrated from version ${report.from} to ${report.to} (applied ${
                report.applied.join(", ")
              })`,
          { database: store.description, ...report, version: SCHEMA_VERSION },
        );
      } finally {
        await store.close();
      }
    });
  return db;
}

export function reloadCommand(contextOf: ContextOf): Command {
  return new Command("reload")
    .description("ask the running service to reload all jobs (inserts a reload marker)")
    .action(async (_opts, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await ctx.withStore((store) => store.insertMarker([], []));
      ctx.print(
        () =>
          `reload requested (marker ${id}); a running service applies it within jobsmanager.reload_interval`,
        { marker_id: id },
      );
    });
}
