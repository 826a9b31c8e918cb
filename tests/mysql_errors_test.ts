/**
 * How a MySQL driver error is told to the operator and to the database
 * health (explainMysqlError): a broken connection is an outage (retried,
 * probed), a statement the server refused is not.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { explainMysqlError } from "../src/store/mysql.ts";
import type { MysqlTarget } from "../src/store/target.ts";
import { DatabaseError, isUnreachable, kindOf } from "../src/errors.ts";

const TARGET: MysqlTarget = {
  kind: "mysql",
  host: "db.example",
  port: 3306,
  user: "jm",
  password: "",
  database: "jobs",
  charset: "utf8mb4",
  poolSize: 10,
  connectTimeoutMs: 10_000,
};

const unreachable = (error: object) =>
  isUnreachable(explainMysqlError(Object.assign(new Error("driver"), error), TARGET));

Deno.test("mysql errors: a connection broken mid-statement is an outage, whatever its code", () => {
  for (
    const code of [
      "ECONNRESET",
      "EPIPE",
      "ECONNABORTED",
      "EHOSTUNREACH",
      "ENETUNREACH",
      "PROTOCOL_CONNECTION_LOST",
      "PROTOCOL_SEQUENCE_TIMEOUT",
      "ER_SERVER_SHUTDOWN",
      "ER_CONNECTION_KILLED",
    ]
  ) {
    assertEquals(unreachable({ code }), true, code);
  }
  // Any error the driver says broke the connection.
  assertEquals(unreachable({ code: "SOMETHING_NEW", fatal: true }), true);
});

Deno.test("mysql errors: a killed connection says so, and that the command can be run again", () => {
  const error = explainMysqlError(
    Object.assign(new Error("Connection was killed"), { code: "ER_CONNECTION_KILLED" }),
    TARGET,
  ) as Error;
  assertEquals(
    error.message,
    "MySQL at db.example:3306 killed the connection (an administrator's KILL, or a server timeout such as wait_timeout), and with it the statement, which may or may not have finished; run the command again",
  );
});

Deno.test("mysql errors: a TLS handshake that failed says what to change, and is no login to retry", () => {
  const tls = { mode: "verify_identity" as const, ca: "PEM", cert: null, key: null };
  const explained = (message: string, target: MysqlTarget = { ...TARGET, tls }) =>
    explainMysqlError(
      Object.assign(new Error(message), { code: "HANDSHAKE_SSL_ERROR", fatal: true }),
      target,
    ) as DatabaseError;
  const name = explained(
    "Hostname/IP does not match certificate's altnames: Host: db.example. is not in the cert's altnames: DNS:localhost",
  );
  assertEquals(
    name.message,
    "cannot connect to MySQL at db.example:3306: TLS failed (Hostname/IP does not match certificate's altnames: Host: db.example. is not in the cert's altnames: DNS:localhost); the server's certificate is not made out to 'db.example'; connect by a name it holds, or set ssl-mode to verify_ca (which checks who signed it, not the name)",
  );
  assertEquals([name.turnedAway, kindOf(name)], [true, "refused"]);
  assertMatch(explained("certificate has expired").message, /; renew the server's certificate/);
  assertMatch(
    explained("unable to get local issuer certificate", { ...TARGET, tls: { ...tls, ca: null } })
      .message,
    /not signed by a CA this system trusts \(update-ca-certificates, or SSL_CERT_FILE\); set db.ssl_ca/,
  );
  const plain = explainMysqlError(
    Object.assign(new Error("Server does not support secure connection"), {
      code: "HANDSHAKE_NO_SSL_SUPPORT",
    }),
    { ...TARGET, tls: { ...tls, mode: "required" } },
  ) as Error;
  assertEquals(
    plain.message,
    "MySQL at db.example:3306 does not offer TLS, which ssl-mode required asks for; set it up on the server (ssl_cert, ssl_key), or set ssl-mode to disabled to connect in plain text",
  );
});

Deno.test("mysql errors: a statement the server refused is no outage", () => {
  for (const code of ["ER_DUP_ENTRY", "ER_OPTION_PREVENTS_STATEMENT", "ER_NO_SUCH_TABLE"]) {
    assertEquals(unreachable({ code, fatal: false }), false, code);
  }
});

Deno.test("mysql errors: a login or connection the server refuses for now is an outage, saying what to change", () => {
  const cases: [object, RegExp][] = [
    [
      { code: "ER_ACCOUNT_HAS_BEEN_LOCKED", errno: 3118 },
      /account is locked; unlock it with ALTER USER 'jm'/,
    ],
    // MariaDB's number, which mysql2 names after MySQL's error of that number.
    [
      {
        code: "ER_BULK_PARSER_INCOMPLETE_ESCAPE_SEQUENCE",
        errno: 4151,
        message: "Access denied, this account is locked",
      },
      /account is locked; unlock it/,
    ],
    [{ code: "ER_MUST_CHANGE_PASSWORD_LOGIN" }, /password has expired; set a new one/],
    [{ code: "ER_CON_COUNT_ERROR" }, /too many connections \(max_connections\)/],
    [{ code: "ER_TOO_MANY_USER_CONNECTIONS" }, /user 'jm' has as many connections as it may/],
    [
      {
        code: "ER_USER_LIMIT_REACHED",
        message: "User 'jm' has exceeded the 'max_questions' resource (current value: 10)",
      },
      /refused user 'jm': it reached one of its resource limits \(User 'jm' has exceeded the 'max_questions' resource/,
    ],
    [{ code: "ER_HOST_IS_BLOCKED" }, /FLUSH HOSTS/],
    [{ code: "ER_HOST_NOT_PRIVILEGED" }, /this host may not connect/],
  ];
  for (const [driver, message] of cases) {
    const error = explainMysqlError(Object.assign(new Error("driver"), driver), TARGET);
    assertEquals(isUnreachable(error), true, JSON.stringify(driver));
    assertMatch(error.message, message);
  }
  // MySQL's error of MariaDB's number is a statement's.
  assertEquals(
    unreachable({ code: "ER_BULK_PARSER_INCOMPLETE_ESCAPE_SEQUENCE", errno: 4151, message: "x" }),
    false,
  );
});

Deno.test("mysql errors: a write privilege the user lacks refuses writes; a read denied refuses reads, not writes", () => {
  const refuses = (code: string, message: string) => {
    const error = explainMysqlError(Object.assign(new Error(message), { code }), TARGET);
    const { writesRefused, readsRefused } = error as DatabaseError;
    return writesRefused ? "writes" : readsRefused ? "reads" : "neither";
  };
  const denied = (command: string, what: string) =>
    `${command} command denied to user 'jm'@'10.0.0.2' for ${what}`;
  assertEquals(
    [
      refuses("ER_TABLEACCESS_DENIED_ERROR", denied("INSERT", "table `jobs`.`jm_runs`")),
      refuses("ER_TABLEACCESS_DENIED_ERROR", denied("INSERT, UPDATE", "table `jobs`.`jm_nodes`")),
      refuses(
        "ER_COLUMNACCESS_DENIED_ERROR",
        denied("UPDATE", "column 'status' in table 'jm_runs'"),
      ),
      refuses("ER_TABLEACCESS_DENIED_ERROR", denied("SELECT", "table `jobs`.`jm_update_info`")),
      refuses(
        "ER_COLUMNACCESS_DENIED_ERROR",
        denied("SELECT", "column 'host' in table 'jm_nodes'"),
      ),
      refuses("ER_TABLE_EXISTS_ERROR", "Table 'jm_runs' already exists"),
    ],
    ["writes", "writes", "writes", "reads", "reads", "neither"],
  );
});
