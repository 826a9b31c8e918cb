/**
 * A secret shorter than MIN_MASKED_LENGTH is not masked: a webhook secret
 * `e` or a database password `job` masked inside every word would mangle
 * all output and, by where the `***` fall, tell the secret. `serve` warns
 * of it at the start instead.
 */
import { assert, assertEquals } from "./assert.ts";
import { MIN_MASKED_LENGTH, redactSecrets } from "../src/domain/secrets.ts";
import {
  BACKENDS,
  cli,
  freshDatabase,
  mysqlTest,
  rawQuery,
  type TestDatabase,
  waitFor,
} from "./helpers.ts";
import { jm, runs, runsDetail, Serve, writeConfig } from "./serve_helpers.ts";

Deno.test("redactSecrets: a secret shorter than MIN_MASKED_LENGTH is left, a longer one masked, the longest first", () => {
  const text = "hello there, everyone: s3cretpass and s3cretpassword";
  assertEquals(MIN_MASKED_LENGTH, 8);
  assertEquals(redactSecrets(text, ["e", "there", "s3cretp"]), text);
  assertEquals(
    redactSecrets(text, ["s3cretpa", "s3cretpassword"]),
    "hello there, everyone: ***ss and ***",
  );
});

for (const backend of BACKENDS) {
  Deno.test(`serve[${backend}]: a one-letter webhook secret leaves output alone, and the start warns of it`, async () => {
    await using db = await freshDatabase(backend);
    await jm(db, "job", "add", "hello", "--second", "*", "--command", "echo hello there, everyone");
    await using serve = new Serve(db, await writeConfig(db), { JM_NOTIFY_WEBHOOK_SECRET: "e" });
    const run = await waitFor(
      async () => (await runs(db, "hello")).find((r) => r.status === "success"),
      { timeoutMs: 20_000, what: "a run of hello", detail: runsDetail(db) },
    );
    assertEquals(run.stdout, "hello there, everyone\n");
    assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
    const warned = serve.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    ).find((e) => e.level === "WARN" && /too short to be masked/.test(e.message));
    assertEquals(warned?.properties.what, "notify.webhook_secret", serve.stderr);
  });
}

/** A user of `db` only with the password `job`; dropped on dispose. */
async function userWithShortPassword(db: TestDatabase) {
  const user = `jm_short_${crypto.randomUUID().slice(0, 8)}`;
  const database = new URL(db.url).pathname.slice(1);
  await rawQuery(db, `CREATE USER '${user}'@'%' IDENTIFIED BY 'job'`);
  await rawQuery(db, `GRANT ALL ON \`${database}\`.* TO '${user}'@'%'`);
  const url = new URL(db.url);
  url.username = user;
  url.password = "job";
  return {
    db: { ...db, url: url.toString() },
    async [Symbol.asyncDispose]() {
      await rawQuery(db, `DROP USER '${user}'@'%'`);
    },
  };
}

mysqlTest("cli[mysql]: a database password 'job' does not mangle the CLI's messages", async () => {
  await using db = await freshDatabase("mysql");
  await using user = await userWithShortPassword(db);
  await jm(db, "db", "migrate");
  // The password in the environment, as advised: the URL's is warned of.
  const url = new URL(user.db.url);
  url.password = "";
  const shown = await cli(["--database", url.toString(), "job", "show", "nosuch"], {
    env: { JM_DB_PASSWORD: "job" },
  });
  assertEquals(shown.code, 1, shown.stderr);
  assert(shown.stderr.includes("job 'nosuch'"), shown.stderr);
  assert(shown.stderr.includes("jobsmanager job list"), shown.stderr);
});
