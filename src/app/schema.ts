/** `db migrate`: bring the schema up to date and say what was done. */
import { heartbeatAge, type Node } from "../domain/node.ts";
import { SCHEMA_VERSION } from "../store/migrations.ts";
import type { MigrationReport, NodeStore, Store } from "../store/store.ts";
import type { Liveness } from "./older_nodes.ts";
import { liveServicesAndNow } from "./status.ts";

export interface MigrateReport extends MigrationReport {
  /** Where the store points, password redacted. */
  database: string;
  /** The schema version this build knows. */
  version: number;
}

export async function migrateSchema(
  store: Pick<Store, "migrate" | "description">,
): Promise<MigrateReport> {
  const report = await store.migrate();
  return { database: store.description, ...report, version: SCHEMA_VERSION };
}

/** A live service whose release understands an older schema than the database now has. */
export interface LeftBehind {
  node: Node;
  /** How old its last heartbeat is, ms. */
  heartbeatAgeMs: number;
}

/**
 * The live services whose release understands a schema older than `version`
 * (a row naming no `schema_version` is of a release before 17): once the
 * schema is migrated to `version`, each goes on running, but refuses it at
 * its next start, and its jobs fire elsewhere or nowhere till it is upgraded.
 * Not one whose process the caller sees gone (`gone`), its heartbeat fresh
 * still: it runs nothing, as `status` says.
 */
export async function servicesLeftBehind(
  nodes: NodeStore,
  liveness: Liveness,
  version: number,
  gone: (node: Node) => boolean = () => false,
): Promise<LeftBehind[]> {
  const { live, databaseNow } = await liveServicesAndNow(nodes, liveness);
  const behind = live.filter((node) => (node.schema_version ?? 0) < version && !gone(node));
  return behind.map((node) => ({
    node,
    heartbeatAgeMs: heartbeatAge(node, liveness.now, liveness.heartbeatMs, databaseNow).age,
  }));
}
