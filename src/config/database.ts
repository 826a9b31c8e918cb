/**
 * Which database the settings point at: parsed from `db.url` or from the
 * original project's host/port/username/password keys. The password lives
 * only here, in the target and in the driver.
 */
import { ValidationError } from "../errors.ts";
import {
  type DatabaseTarget,
  type MysqlTarget,
  type MysqlTls,
  redactUrl,
  type TlsMode,
} from "../store/target.ts";
import { type Settings, tlsMode } from "./config.ts";
import { charsetProblem } from "./charset.ts";

/** The names of this machine a server reached by its socket may be given by. */
const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]", ""]);

/** What a MySQL URL may say after `?`, each once; anything else is refused, not ignored. */
const URL_PARAMETERS = ["charset", "socket", "ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"] as const;
type UrlParameter = typeof URL_PARAMETERS[number];

/** Where each TLS setting was given: a config key, or the URL's parameter (named in messages). */
interface TlsSettings {
  mode: { value: TlsMode | ""; from: string };
  ca: { value: string; from: string };
  cert: { value: string; from: string };
  key: { value: string; from: string };
}

export const DEFAULT_SQLITE_PATH = "jobsmanager.db";

/** Resolve the target from settings; throws ValidationError naming the key at fault. */
export function resolveTarget(settings: Settings): DatabaseTarget {
  const url = settings["db.url"].trim();
  if (url === "" && settings["db.host"] === "" && settings["db.socket"] === "") {
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
    // A socket alone names this machine's server.
    host: settings["db.host"] === "" ? "localhost" : settings["db.host"],
    port: settings["db.port"],
    user: settings["db.username"],
    password: settings["db.password"],
    database: settings["db.database"],
    charset: settings["db.charset"],
    poolSize: settings["db.pool_size"],
    connectTimeoutMs: settings["db.connect_timeout"] * 1000,
  };
  const tls: TlsSettings = {
    mode: { value: settings["db.ssl_mode"], from: "db.ssl_mode" },
    ca: { value: settings["db.ssl_ca"], from: "db.ssl_ca" },
    cert: { value: settings["db.ssl_cert"], from: "db.ssl_cert" },
    key: { value: settings["db.ssl_key"], from: "db.ssl_key" },
  };
  const parsed = url === "" ? base : parseMysqlUrl(url, base, tls);
  // db.socket is a server on this machine: a URL naming another host (a --database given
  // beside the config) is not reached through it.
  const socket = settings["db.socket"];
  const target = socket === "" || parsed.socket !== undefined || !LOCAL_HOSTS.has(parsed.host)
    ? parsed
    : { ...parsed, socket };
  target.password = resolvePassword(settings, target.password);
  const resolved = resolveTls(tls);
  if (resolved?.mode === "verify_identity" && isAddress(target.host)) {
    // mysql2 checks no name for an address: the check would be skipped, not made.
    throw new ValidationError(
      fieldOf(tls.mode.from),
      `${tls.mode.from}: verify_identity checks the server's certificate against the host name, and the host is the address ${target.host}; connect by the name the certificate is made out to, or set it to verify_ca (which checks who signed the certificate)`,
    );
  }
  return resolved === null ? target : { ...target, tls: resolved };
}

/**
 * The TLS the settings ask for, its files read; null: plain text. A CA
 * with no mode asks for verify_ca, as the mysql client takes it.
 */
function resolveTls(tls: TlsSettings): MysqlTls | null {
  const mode = tls.mode.value !== ""
    ? tls.mode.value
    : tls.ca.value !== ""
    ? "verify_ca"
    : "disabled";
  // A URL's ssl-mode=disabled sets aside the file's TLS files, as its password does password_file.
  const fromUrl = (s: { from: string }) => s.from.startsWith("db.url");
  const setAside = mode === "disabled" && fromUrl(tls.mode);
  const given = [tls.ca, tls.cert, tls.key].filter((s) =>
    s.value !== "" && (!setAside || fromUrl(s))
  );
  if (mode === "disabled") {
    if (given.length === 0) return null;
    throw new ValidationError(
      fieldOf(given[0].from),
      `${
        given[0].from
      }: set, but ${tls.mode.from} is disabled, so no TLS is used; remove it, or set ${tls.mode.from} to required, verify_ca or verify_identity`,
    );
  }
  if ((tls.cert.value === "") !== (tls.key.value === "")) {
    const [missing, other] = tls.cert.value === "" ? [tls.cert, tls.key] : [tls.key, tls.cert];
    throw new ValidationError(
      fieldOf(missing.from),
      `${missing.from}: missing; a client certificate needs both ${tls.cert.from} and ${tls.key.from} (${other.from} is set)`,
    );
  }
  if (mode === "required" && tls.ca.value !== "") {
    throw new ValidationError(
      fieldOf(tls.ca.from),
      `${tls.ca.from}: set, but ${tls.mode.from} is required, which does not check the server's certificate; set ${tls.mode.from} to verify_ca or verify_identity, or remove ${tls.ca.from}`,
    );
  }
  const read = (setting: { value: string; from: string }, holds: RegExp, what: string) => {
    if (setting.value === "") return null;
    let text: string;
    try {
      text = Deno.readTextFileSync(setting.value);
    } catch (error) {
      throw new ValidationError(
        fieldOf(setting.from),
        `${setting.from}: '${setting.value}' cannot be read: ${(error as Error).name}`,
      );
    }
    const problem = !holds.test(text)
      ? `holds no ${what} in PEM form (-----BEGIN …-----)`
      : /ENCRYPTED/.test(text)
      ? "is encrypted, and jobsmanager cannot ask for its passphrase: decrypt it (openssl pkey -in KEY -out PLAIN) and keep it readable by the service's user alone"
      : null;
    if (problem === null) return text;
    throw new ValidationError(
      fieldOf(setting.from),
      `${setting.from}: '${setting.value}' ${problem}`,
    );
  };
  const certificate = /-----BEGIN CERTIFICATE-----/;
  return {
    mode,
    ca: read(tls.ca, certificate, "CA certificate"),
    cert: read(tls.cert, certificate, "certificate"),
    key: read(tls.key, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, "private key"),
  };
}

/**
 * A URL's query, each name's values in order, %-decoded: a `+` stays a
 * `+` (a path such as ca+bundle.pem), as a URL's other parts keep it; a
 * form's query would read it as a space.
 */
function queryOf(search: string): Map<string, string[]> {
  const query = new Map<string, string[]>();
  for (const pair of search.replace(/^\?/, "").split("&")) {
    if (pair === "") continue;
    const at = pair.indexOf("=");
    const [name, value] = at < 0 ? [pair, ""] : [pair.slice(0, at), pair.slice(at + 1)];
    let decoded: [string, string];
    try {
      decoded = [decodeURIComponent(name), decodeURIComponent(value)];
    } catch {
      throw new ValidationError(
        "db.url",
        "db.url's query holds a % that starts no %XX escape; write % as %25",
      );
    }
    query.set(decoded[0], [...query.get(decoded[0]) ?? [], decoded[1]]);
  }
  return query;
}

/** Whether `host` is an IPv4 or IPv6 address (a name never holds a colon). */
function isAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

/** The setting a message about `from` (a key, or a parameter of db.url) names as its field. */
function fieldOf(from: string): string {
  return from.startsWith("db.url") ? "db.url" : from;
}

function parseMysqlUrl(url: string, base: MysqlTarget, tls: TlsSettings): MysqlTarget {
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
  const given = queryOf(parsed.search);
  for (const [name, values] of given) {
    // Named, never quoted: a parameter jobsmanager does not know may be a password.
    if (!(URL_PARAMETERS as readonly string[]).includes(name)) {
      throw new ValidationError(
        "db.url",
        `db.url has parameter '${name}', which jobsmanager does not know (it knows ${
          URL_PARAMETERS.join(", ")
        }); remove it`,
      );
    }
    if (values.length > 1) {
      throw new ValidationError("db.url", `db.url: parameter '${name}' is given twice; keep one`);
    }
  }
  const param = (name: UrlParameter) => given.get(name)?.[0];
  for (
    const [name, setting] of [["ssl-ca", tls.ca], ["ssl-cert", tls.cert], [
      "ssl-key",
      tls.key,
    ]] as const
  ) {
    const value = param(name);
    if (value !== undefined) Object.assign(setting, { value, from: `db.url's ${name}` });
  }
  const mode = param("ssl-mode");
  if (mode !== undefined) {
    try {
      tls.mode = { value: tlsMode(mode, "ssl-mode"), from: "db.url's ssl-mode" };
    } catch (error) {
      throw new ValidationError("db.url", `db.url: ${(error as Error).message}`);
    }
  }
  const socket = param("socket");
  if (socket === "" || (socket !== undefined && !socket.startsWith("/"))) {
    throw new ValidationError(
      "db.url",
      `db.url: socket=${socket} is not a socket's absolute path (e.g. socket=/run/mysqld/mysqld.sock)`,
    );
  }
  const charset = param("charset") ?? null;
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
    ...parsed.password === "" ? {} : { passwordInUrl: true },
    database,
    charset: charset ?? base.charset,
    ...socket === undefined ? {} : { socket },
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
