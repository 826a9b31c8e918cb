/** The room a burst's armed shells have under the open-file limit. */
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { filesSetAside, openFileRoom, room, softLimit } from "../src/daemon/open_files.ts";
import { BACKENDS, CliProcess, freshDatabase, waitFor } from "./helpers.ts";
import { ADMIN } from "./http_harness.ts";
import { jm, runs, runsDetail, writeConfig } from "./serve_helpers.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95541                95541                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("open files: the soft limit is read from /proc's limits", () => {
  assertEquals(softLimit(LIMITS), 1024);
  assertEquals(softLimit(LIMITS.replace("1024  ", "unlimited")), Infinity);
  assertThrows(() => softLimit(LIMITS.replace("1024  ", "many  ")), Error, "no soft limit");
  assertThrows(() => softLimit("Limit Soft Limit\n"), Error, "no soft limit");
});

Deno.test("open files: the room is the limit less what is open and what is kept", () => {
  assertEquals(room(1024, 100, 64), 860);
  assertEquals(room(1024, 1000, 64), 0);
  assertEquals(room(Infinity, 100, 64), Infinity);
});

Deno.test({
  name: "open files: this process's room is read from /proc",
  ignore: Deno.build.os !== "linux",
  fn: () => {
    // Other test files open and close descriptors meanwhile: only its sense is certain.
    const left = openFileRoom(64);
    assert(Number.isInteger(left) && left >= 0, `room: ${left}`);
    assert(openFileRoom(1e9) === 0, "a reserve above the limit leaves none");
  },
});

Deno.test("open files: set aside are 16 spare, the connections yet to open and the HTTP clients", () => {
  assertEquals(filesSetAside(0, 0), 16);
  assertEquals(filesSetAside(12, 256), 284);
});

/**
 * Jobs firing together in the test below, 3 descriptors each: 150 leave
 * some 110 on SQLite (60 for 20), fewer on MySQL, whose pools' connections
 * are set aside (45 for 15).
 */
const TOGETHER = { sqlite: 20, mysql: 15 };

for (const backend of BACKENDS) {
  for (const http of [false, true]) {
    Deno.test({
      name:
        `serve[${backend}]: the runs at once it says the open-file limit leaves room for are there (${
          http ? "HTTP clients aside" : "no HTTP"
        })`,
      ignore: Deno.build.os !== "linux",
      fn: async () => {
        await using db = await freshDatabase(backend);
        const together = TOGETHER[backend];
        const jobs = Array.from({ length: together }, (_, i) => ({
          id: `j${i}`,
          command: "sleep 2",
          second: "*/5",
        }));
        await Deno.writeTextFile(`${db.dir}/jobs.json`, JSON.stringify({ jobs }));
        await jm(db, "apply", `${db.dir}/jobs.json`);
        const config = await writeConfig(db);
        if (http) {
          const doc = JSON.parse(await Deno.readTextFile(config));
          await Deno.writeTextFile(
            config,
            JSON.stringify({ ...doc, http: { listen: "127.0.0.1:0" } }),
          );
        }
        await using serve = new CliProcess(
          ["--database", db.url, "--config", config, "serve"],
          { cwd: db.dir, openFiles: 150, env: http ? { JM_HTTP_TOKEN: ADMIN } : {} },
        );
        const warning = await waitFor(
          () =>
            serve.stderr.split("\n").slice(0, -1).filter((l) => l.startsWith("{"))
              .map((l) => JSON.parse(l)).find((e) => /runs at once/.test(e.message)),
          {
            timeoutMs: 30_000,
            what: "the warning of the open-file limit",
            detail: () => serve.stderr,
          },
        );
        // An instant whose runs all ended: they ran at once, each holding its descriptors.
        // One after the start: a fire due as the service loaded is caught up late, past its grace.
        const loaded = Date.parse(warning["@timestamp"]);
        const instant = await waitFor(async () => {
          const ended = (await runs(db)).filter((r) =>
            r.status !== "running" && r.scheduled_at > loaded
          );
          const at = [...new Set(ended.map((r) => r.scheduled_at))];
          return at.find((t) => ended.filter((r) => r.scheduled_at === t).length === together);
        }, {
          timeoutMs: 30_000,
          what: `${together} runs of one instant to end`,
          detail: runsDetail(db),
        });
        const ran = (await runs(db)).filter((r) => r.scheduled_at === instant);
        assertEquals(
          ran.filter((r) => r.status === "success").length,
          together,
          `${await runsDetail(db)()}\n${serve.stderr}`,
        );
        assert(
          warning.properties.room >= together,
          `it said the limit left room for ${warning.properties.room} runs at once, and ${together} ran at once: ${warning.message}`,
        );
        // 256 clients would take more than the limit leaves.
        if (http) assertEquals(warning.properties.crowded, 0, warning.message);
        const { status } = await serve.stop("SIGTERM", 30_000);
        assertEquals(status.code, 0, serve.stderr);
      },
    });
  }
}
