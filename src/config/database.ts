/**
 * Which database the settings point at: parsed from `db.url` or from the
 * original project's host/port/username/password keys. The password lives
 * only here, in the target and in the driver.
 */
import { ValidationError } from "../errors.ts";
import { type DatabaseTarget, type MysqlTarget, redactUrl } from "../store/target.ts";
import type { Settings } from "./config.ts";
import { charsetProblem } from "./charset.ts";

export const DEFAULT_SQLITE_PATH = "jobsmanager.db";

/** Resolve the target from settings; throws ValidationError naming the key at fault. */
export function resolveTarget(settings: Settings): DatabaseTarget {
  const url = settings["db.url"].trim();
  if (url === "" && settings["db.host"] === "") {
    return { kind: "sqlite", path: DEFAULT_SQLITE_PATH };
  }
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    if (path === "") {
      throw new ValidationError(
        "db.url",
        "db.url: 'sqlite:' needs a file path, e.g. sqlite:/var/lib/jobsmanager/jobs.db",
      );
    }
    return { kind: "sqlite", path };
  }
  const base: MysqlTarget = {
    kind: "mysql",
    host: settings["db.host"],
    port: settings["db.port"],
    user: settings["db.username"],
    password: settings["db.password"],
    database: settings["db.database"],
    charset: settings["db.charset"],
    poolSize: settings["db.pool_size"],
    connectTimeoutMs: settings["db.connect_timeout"] * 1000,
  };
  const target = url === "" ? base : parseMysqlUrl(url, base);
  target.password = resolvePassword(settings, target.password);
  return target;
}

function parseMysqlUrl(url: string, base: MysqlTarget): MysqlTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(
      "db.url",
      `db.url: ${
        JSON.stringify(redactUrl(url))
      } is not a URL (expected sqlite:PATH or mysql://USER:PASSWORD@HOST:PORT/DB; write / @ : % in a password as %2F %40 %3A %25)`,
    );
  }
  if (parsed.protocol !== "mysql:" && parsed.protocol !== "mariadb:") {
    throw new ValidationError(
      "db.url",
      `db.url: scheme '${parsed.protocol}' is not supported (expected sqlite:PATH or mysql://USER@HOST:PORT/DB)`,
    );
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  if (parsed.hostname === "" || database === "" || database.includes("/")) {
    throw new ValidationError(
      "db.url",
      `db.url: ${
        JSON.stringify(redactUrl(url))
      } must name a host and a database, e.g. mysql://jobs@127.0.0.1:3306/jobsmanager`,
    );
  }
  const charset = parsed.searchParams.get("charset");
  const wrong = charset === null ? null : charsetProblem(charset);
  if (wrong !== null) {
    throw new ValidationError(
      "db.url",
      `db.url: charset=${charset} ${wrong}; write ?charset=utf8mb4 in the URL, or leave it out`,
    );
  }
  return {
    ...base,
    host: parsed.hostname,
    port: parsed.port === "" ? 3306 : Number(parsed.port),
    user: parsed.username === "" ? base.user : decodeURIComponent(parsed.username),
    password: parsed.password === "" ? base.password : decodeURIComponent(parsed.password),
    database,
    charset: charset ?? base.charset,
  };
}

/**
 * The password file wins over an empty password; both set in the file is
 * ambiguous (one from the environment or a flag has overridden the file's
 * password_file by now, in loadConfig).
 */
function resolvePassword(settings: Settings, password: string): string {
  const file = settings["db.password_file"];
  if (file === "") return password;
  if (password !== "") {
    throw new ValidationError(
      "db.password_file",
      "db.password_file: a password is also given in the config file (db.password or the URL); keep only one",
    );
  }
  try {
    return Deno.readTextFileSync(file).split(/\r?\n/)[0];
  } catch (error) {
    throw new ValidationError(
      "db.password_file",
      `db.password_file: '${file}' cannot be read: ${(error as Error).name}`,
    );
  }
}
