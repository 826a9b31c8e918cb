/** `jobsmanager db migrate` and `jobsmanager reload`. */
import { reload } from "../app/jobs.ts";
import { type LeftBehind, migrateSchema, servicesLeftBehind } from "../app/schema.ts";
import { serviceGone } from "../daemon/presence.ts";
import { command, group } from "./command.ts";
import { writeErr } from "./context.ts";
import { serviceLine } from "./output.ts";

export function dbCommand() {
  const migrate = command({
    brief: "create or upgrade the schema (safe to run at any time)",
    action: async (ctx) => {
      // Not withStore: that refuses an older schema; this upgrades it and says from which version.
      const { store, migrated: report } = await ctx.openMigrated(migrateSchema);
      try {
        const behind = await servicesLeftBehind(store, ctx.liveness(), report.to, serviceGone);
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
          {
            ...report,
            services_left_behind: behind.map(({ node }) => ({
              id: node.id,
              host: node.host,
              pid: node.pid,
              schema_version: node.schema_version ?? null,
            })),
          },
        );
        for (const one of behind) {
          writeErr(`jobsmanager: warning: ${leftBehindLine(one, report.to)}`);
        }
      } finally {
        await store.close();
      }
    },
  });
  return group("database maintenance", { migrate });
}

/** What a live service of an older release does once the schema is at `version`, and what to do. */
function leftBehindLine({ node, heartbeatAgeMs }: LeftBehind, version: number): string {
  const release = node.schema_version == null
    ? "a release before schema version 17 (its row in jm_nodes names no schema_version)"
    : `a release that understands schema version ${node.schema_version} at most`;
  return `node ${node.id} (host ${node.host}, pid ${node.pid}, last heartbeat ${
    Math.round(heartbeatAgeMs / 1000)
  } s ago) runs ${release}: it goes on running, but refuses schema version ${version} at its next start, and its jobs then fire on the other services or nowhere; upgrade it before it restarts`;
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
