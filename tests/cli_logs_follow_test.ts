/**
 * `logs --follow` loses no line: one committed after lines with greater ids
 * (two nodes' batches on MySQL) is still printed, a `jm_syslog` emptied
 * meanwhile is said and its newest lines shown again, and a database outage is
 * followed through, said on stderr when it goes and when it is back.
 */
import { assert, assertEquals } from "./assert.ts";
import { BACKENDS, freshDatabase, mysqlTest, rawQuery, waitFor } from "./helpers.ts";
import { proxyFor } from "./tcp_proxy.ts";
import { follow, logRow, printed, printedAll } from "./logs_follow.ts";

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: logs --follow prints a line committed below the last id, and says when jm_syslog restarts`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    await store.migrate().finally(() => store.close());
    await logRow(db, 1, "one");
    await logRow(db, 2, "two");
    await using f = follow(db);
    await printedAll(f, ["one", "two"], "the lines already there");
    await logRow(db, 10, "ten");
    await printedAll(f, ["ten"], "a new line");
    // Inserted before line 10 and committed after it was shown.
    await logRow(db, 5, "five, committed late");
    await printedAll(f, ["five, committed late"], "the line committed late");
    await rawQuery(db, "DELETE FROM jm_syslog");
    await logRow(db, 1, "after the reset");
    await printedAll(f, ["after the reset"], "the first line after jm_syslog was emptied");
    assertEquals(printed(f), ["one", "two", "ten", "five, committed late", "after the reset"]);
    assertEquals(
      f.stderr,
      "jobsmanager: jm_syslog was emptied or its ids restarted (its newest line is 1, the last shown was 10); showing its newest lines (--limit) and following on from there\n",
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: logs --follow ends, exit 0, at the first line after its reader has gone (| head)`, async () => {
    await using db = await freshDatabase(backend);
    const store = db.open();
    await store.migrate().finally(() => store.close());
    await logRow(db, 1, "one");
    await using f = follow(db);
    await printedAll(f, ["one"], "the line already there");
    await f.closeStdout();
    // It sees its reader gone as it writes the next line.
    await logRow(db, 2, "two");
    const status = await f.exit(30_000, "logs --follow to end at the line after its stdout closed");
    assertEquals([status.code, f.stderr], [0, ""]);
  });
}

mysqlTest(
  "cli[mysql]: logs --follow keeps following through a database outage, saying so",
  async () => {
    await using db = await freshDatabase("mysql");
    const store = db.open();
    await store.migrate().finally(() => store.close());
    await using proxy = proxyFor(db);
    const url = new URL(db.url);
    url.port = String(proxy.port);
    await logRow(db, 1, "before");
    await using f = follow(db, url.toString());
    await printedAll(f, ["before"], "the line before the outage");
    proxy.cut();
    await waitFor(() => f.stderr.includes("still following"), {
      timeoutMs: 20_000,
      what: "follow to say the database went away",
      detail: () => `running: ${f.running}\nstderr:\n${f.stderr}`,
    });
    await logRow(db, 2, "during");
    proxy.restore();
    await waitFor(() => f.stderr.includes("the database answers again"), {
      timeoutMs: 20_000,
      what: "follow to say the database is back",
      detail: () => `running: ${f.running}\nstderr:\n${f.stderr}`,
    });
    await logRow(db, 3, "after");
    await printedAll(f, ["during", "after"], "the lines written during and after the outage");
    assertEquals(f.running, true);
  },
);

mysqlTest(
  "cli[mysql]: logs --follow ends at Ctrl-C while a read waits on a network that drops packets",
  async () => {
    await using db = await freshDatabase("mysql");
    const store = db.open();
    await store.migrate().finally(() => store.close());
    await using proxy = proxyFor(db);
    const url = new URL(db.url);
    url.port = String(proxy.port);
    await logRow(db, 1, "before");
    await using f = follow(db, url.toString());
    await printedAll(f, ["before"], "the line before the partition");
    proxy.blackhole();
    // A read is under way, and gets no answer.
    await waitFor(() => proxy.heldChunks > 0, {
      timeoutMs: 30_000,
      what: "a read held by the partition",
      detail: () => `stderr:\n${f.stderr}`,
    });
    const { status, ms } = await f.stop("SIGINT", 10_000);
    assertEquals(status.code, 0, f.stderr);
    assert(ms < 5000, `took ${ms} ms to end after Ctrl-C`);
  },
);
