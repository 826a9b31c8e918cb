/** `jobsmanager db migrate` and `jobsmanager reload`. */
import { reload } from "../app/jobs.ts";
import { migrateSchema } from "../app/schema.ts";
import { command, group } from "./command.ts";
import { serviceLine } from "./output.ts";

export function dbCommand() {
  const migrate = command({
    brief: "create or upgrade the schema (safe to run at any time)",
    action: async (ctx) => {
      // Not withStore: that refuses an older schema; this upgrades it and says from which version.
      const { store, migrated: report } = await ctx.openMigrated(migrateSchema);
      try {
        const created = report.created.length === 0 ? [] : [
          `${report.database}: created the missing table${report.created.length === 1 ? "" : "s"} ${
            report.created.join(", ")
          } again, empty`,
        ];
        const widened = (report.widened ?? []).map((column) =>
          `${report.database}: widened ${column} to LONGTEXT, as the schema declares it (the original JobsManager made it narrower)`
        );
        ctx.print(
          () =>
            [
              ...created,
              ...widened,
              report.applied.length === 0
                ? `${report.database}: schema already at version ${report.to}`
                : `${report.database}: schema migrated from version ${report.from} to ${report.to} (applied ${
                  report.applied.join(", ")
                })`,
            ].join("\n"),
          report,
        );
      } finally {
        await store.close();
      }
    },
  });
  return group("database maintenance", { migrate });
}

export function reloadCommand() {
  return command({
    brief: "ask the live services to reload all jobs (inserts a reload marker)",
    action: async (ctx) => {
      const { id, live } = await ctx.withStore(async (store) => ({
        id: await reload(store),
        live: await ctx.liveServices(store),
      }));
      ctx.print(
        () => `reload requested (marker ${id})\n${serviceLine(live, ctx.databaseName)}`,
        { marker_id: id, live_services: live.map((n) => n.id) },
      );
    },
  });
}
