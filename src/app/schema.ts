/** `db migrate`: bring the schema up to date and say what was done. */
import { SCHEMA_VERSION } from "../store/migrations.ts";
import type { MigrationReport, Store } from "../store/store.ts";

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
