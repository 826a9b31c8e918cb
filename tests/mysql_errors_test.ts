/**
 * How a MySQL driver error is told to the operator and to the database
 * health (explainMysqlError): a broken connection is an outage (retried,
 * probed), a statement the server refused is not.
 */
import { assertEquals } from "./assert.ts";
import { explainMysqlError } from "../src/store/mysql.ts";
import type { MysqlTarget } from "../src/store/target.ts";
import { isUnreachable } from "../src/errors.ts";

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

Deno.test("mysql errors: a statement the server refused is no outage", () => {
  for (const code of ["ER_DUP_ENTRY", "ER_OPTION_PREVENTS_STATEMENT", "ER_NO_SUCH_TABLE"]) {
    assertEquals(unreachable({ code, fatal: false }), false, code);
  }
});
