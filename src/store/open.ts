/** Open the store a target names. */
import { MysqlDriver } from "./mysql.ts";
import { SqliteDriver } from "./sqlite.ts";
import { SqlStore } from "./sql_store.ts";
import type { Store } from "./store.ts";
import type { DatabaseTarget } from "./target.ts";

export function openStore(target: DatabaseTarget): Store {
  const driver = target.kind === "sqlite"
    ? SqliteDriver.open(target.path)
    : new MysqlDriver(target);
  return new SqlStore(driver);
}
