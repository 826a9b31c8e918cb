/**
 * Output (issue 8, point 8): tables fit the width ($COLUMNS here, as
 * stdout is a pipe), cutting long commands with `…` and leaving out the
 * least needed columns when that is not enough, while `show` and --json
 * keep the full text; and --json writes every instant one way, ISO 8601
 * in UTC, in every command.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { Node } from "../src/domain/node.ts";
import {
  BACKENDS,
  cli,
  type CliResult,
  freshDatabase,
  migrateFresh,
  type TestDatabase,
} from "./helpers.ts";

const LONG = `echo ${"x".repeat(200)}`;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function jm(
  db: TestDatabase,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return cli(["--database", db.url, ...args], { cwd: db.dir, env });
}

async function stdout(db: TestDatabase, args: string[], env?: Record<string, string>) {
  const r = await jm(db, args, env);
  assertEquals([r.code, r.stderr], [0, ""], args.join(" "));
  return r.stdout;
}

/** A database holding job `long`, a live service, a run and a log line. */
/** A live service's row, as of `now`. */
function liveNode(now: number): Node {
  return {
    id: "svc",
    host: "svc",
    pid: 1,
    version: "0.1.0",
    started_at: now - 60_000,
    heartbeat_at: now,
    applied_marker: null,
    jobs_loaded: 1,
    last_reload_at: now - 30_000,
    last_reload_ms: 12,
    stopped_at: null,
    timezone: "UTC",
  };
}

/** The service beats now: on a busy machine the commands before may outlast its last beat. */
async function beat(db: TestDatabase): Promise<void> {
  const store = db.open();
  try {
    await store.saveNode(liveNode(Date.now()));
  } finally {
    await store.close();
  }
}

async function seeded(backend: (typeof BACKENDS)[number]): Promise<TestDatabase> {
  const db = await freshDatabase(backend);
  const store = db.open();
  try {
    await migrateFresh(db, store);
    const now = Date.now();
    await store.saveNode(liveNode(now));
    await store.insertLogs([{
      created_at: now,
      level: "info",
      logger_name: "jobsmanager.runner",
      message: "run 1 ended",
      context: { job: "long", run: 1 },
    }]);
  } finally {
    await store.close();
  }
  await stdout(db, ["job", "add", "long", "--command", LONG, "--cron", "30 2 * * *"]);
  await beat(db);
  await stdout(db, ["job", "run", "long"]);
  return db;
}

for (const backend of BACKENDS) {
  Deno.test(`cli[${backend}]: tables fit $COLUMNS, cutting the command with …; show and --json keep it`, async () => {
    await using db = await seeded(backend);
    const full = (await stdout(db, ["job", "list"])).trimEnd().split("\n");
    assert(full[1].endsWith(`  ${LONG}`), "not cut without a width");

    const at120 = (await stdout(db, ["job", "list"], { COLUMNS: "120" })).trimEnd().split("\n");
    assertEquals(at120.length, 2);
    assert(at120.every((l) => l.length <= 120), at120.join("\n"));
    assertMatch(at120[0], /^ID +SCHEDULE .* ENABLED +TIMEOUT +NEXT FIRE +COMMAND$/);
    assertEquals(at120[1].length, 120);
    assertMatch(at120[1], / echo x+…$/);

    // Too narrow for every column: the least needed ones go, and a line says which.
    const at80 = (await stdout(db, ["job", "list"], { COLUMNS: "80" })).trimEnd().split("\n");
    assert(at80.every((l) => l.length <= 80), at80.join("\n"));
    assertMatch(at80[0], /^ID +SCHEDULE \(s m h dom mon dow\) +NEXT FIRE +COMMAND$/);
    assertMatch(at80[1], / echo x+…$/);
    assertEquals(
      at80[2],
      "(TIMEOUT, ENABLED, ZONE left out to fit 80 columns; --json has everything)",
    );

    const runs = (await stdout(db, ["runs"], { COLUMNS: "90" })).trimEnd().split("\n");
    assert(runs.every((l) => l.length <= 90), runs.join("\n"));

    const show = await stdout(db, ["job", "show", "long"], { COLUMNS: "80" });
    assert(show.split("\n").includes(`command             ${LONG}`), show);
    const json = JSON.parse(await stdout(db, ["--json", "job", "list"], { COLUMNS: "80" }));
    assertEquals(json[0].command, LONG);
  });

  Deno.test(`cli[${backend}]: --json writes every instant as ISO 8601 in UTC, in every command`, async () => {
    await using db = await seeded(backend);
    const documents: Record<string, unknown> = {};
    for (
      const args of [
        ["job", "list"],
        ["job", "show", "long"],
        ["job", "next", "long", "-n", "2"],
        ["job", "update", "long", "--timeout", "5"],
        ["job", "run", "long"],
        ["runs"],
        ["runs", "show", "1"],
        ["status"],
        ["reload"],
      ]
    ) {
      if (args[1] === "run") await beat(db);
      documents[args.join(" ")] = JSON.parse(await stdout(db, ["--json", ...args]));
    }
    const logs = await stdout(db, ["--json", "logs"]);
    documents.logs = logs.trimEnd().split("\n").map((l) => JSON.parse(l));

    // Every `…_at`, `next`, `from` and `at` value: a string in the one format.
    const times: string[] = [];
    const walk = (value: unknown, key: string, where: string) => {
      if (Array.isArray(value)) {
        value.forEach((v) => walk(v, key, where));
      } else if (value !== null && typeof value === "object") {
        for (const [k, v] of Object.entries(value)) walk(v, k, `${where}.${k}`);
      } else if (/_at$|^(next|from|at)$/.test(key) && value !== null) {
        assertMatch(String(value), ISO, `${where} is ${JSON.stringify(value)}`);
        times.push(where);
      }
    };
    for (const [name, document] of Object.entries(documents)) walk(document, "", name);
    for (
      const where of [
        "job list.created_at",
        "job list.next",
        "job show long.updated_at",
        "job show long.runs.scheduled_at",
        "job next long -n 2.next",
        "job update long --timeout 5.job.created_at",
        "job run long.scheduled_at",
        "runs.scheduled_at",
        "runs show 1.scheduled_at",
        "status.services.heartbeat_at",
        "status.services.last_reload_at",
        "status.next_fires.at",
        "logs.created_at",
      ]
    ) {
      assert(times.includes(where), `${where} is among the times checked: ${times.join(", ")}`);
    }
    // Durations stay numbers.
    const status = documents.status as { services: { last_reload_ms: unknown }[] };
    assertEquals(status.services[0].last_reload_ms, 12);
  });
}
