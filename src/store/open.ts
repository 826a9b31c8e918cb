/** Open the store a target names. */
import { ChangeNotice, noticeDirectories, NoticingStore } from "./change_notice.ts";
import { MysqlDriver } from "./mysql.ts";
import { SqliteDriver } from "./sqlite.ts";
import { SqlStore } from "./sql_store.ts";
import type { Store } from "./store.ts";
import type { DatabaseTarget } from "./target.ts";

export interface OpenOptions {
  /**
   * Where a MySQL store leaves a change notice after each write services
   * poll for (change_notice.ts): the jobsmanager.notice_dir setting, ""
   * for the default directories; null for none, as the service's own
   * store. SQLite stores leave none: services see the file written.
   */
  notices?: string | null;
}

export function openStore(target: DatabaseTarget, options: OpenOptions = {}): Store {
  if (target.kind === "sqlite") return new SqlStore(SqliteDriver.open(target.path));
  const { notices = "" } = options;
  const driver = new MysqlDriver(target);
  return notices === null
    ? new SqlStore(driver)
    : new NoticingStore(driver, new ChangeNotice(target, noticeDirectories(notices)));
}
