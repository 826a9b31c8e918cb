/**
 * `jobsmanager serve` end to end, on every backend: a job with a user runs
 * as that user (the service runs as root here, as it must for that), and
 * one whose user this host has no account of is an error saying so.
 */
import { assertEquals } from "./assert.ts";
import { BACKENDS, cli, freshDatabase, waitFor, withTestAccount } from "./helpers.ts";
import { jm, ready, runs, runsDetail, startServe } from "./serve_helpers.ts";

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `serve[${backend}]: a job with --user nobody runs as uid 65534; one with an unknown user is an error saying so`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using db = await freshDatabase(backend);
      const never = ["--cron", "0 0 1 1 *"];
      await jm(
        db,
        "job",
        "add",
        "as-nobody",
        ...never,
        "--user",
        "nobody",
        "--command",
        'echo "$(id -u) $USER $(pwd)"',
      );
      await jm(
        db,
        "job",
        "add",
        "as-ghost",
        ...never,
        "--user",
        "jm-no-such-user",
        "--command",
        "true",
      );
      await using serve = await startServe(db);
      await ready(db, serve);
      await jm(db, "job", "run", "as-nobody");
      await jm(db, "job", "run", "as-ghost");
      const ended = await waitFor(async () => {
        const all = await runs(db);
        return all.length === 2 && all.every((r) => r.finished_at !== null) ? all : undefined;
      }, { timeoutMs: 20_000, what: "both runs to end", detail: runsDetail(db) });
      const [nobody, ghost] = ["as-nobody", "as-ghost"].map((id) =>
        ended.find((r) => r.job_id === id)!
      );
      assertEquals([nobody.status, nobody.stdout, nobody.note], [
        "success",
        "65534 nobody /\n",
        null,
      ]);
      assertEquals([ghost.status, ghost.note], [
        "error",
        `job as-ghost runs as 'jm-no-such-user', who has no account on host ${Deno.hostname()}: create it, or change the job's user (jobsmanager job update as-ghost --user NAME, or --user '' for the service's own)`,
      ]);
      assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `job run --here [${backend}]: a job with a user gets the account's HOME, USER and LOGNAME over the caller's, the job's env over them, and no secret of the caller's`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using db = await freshDatabase(backend);
      const command =
        'echo "$HOME $USER $LOGNAME $(pwd) ${AWS_SECRET_ACCESS_KEY-none} $LANG $(id -u)"';
      await jm(
        db,
        "job",
        "add",
        "here",
        "--cron",
        "0 0 1 1 *",
        "--user",
        "nobody",
        "--command",
        command,
      );
      await jm(
        db,
        "job",
        "add",
        "own",
        "--cron",
        "0 0 1 1 *",
        "--user",
        "nobody",
        "--env",
        "LOGNAME=own",
        "--command",
        command,
      );
      const caller = {
        HOME: "/root",
        USER: "root",
        LOGNAME: "root",
        LANG: "C.UTF-8",
        AWS_SECRET_ACCESS_KEY: "callers",
      };
      // The first line of each is the command's output, the run's details after it.
      const here = await cli(["--database", db.url, "job", "run", "here", "--here"], {
        cwd: db.dir,
        env: caller,
      });
      assertEquals([here.code, here.stdout.split("\n")[0]], [
        0,
        "/nonexistent nobody nobody / none C.UTF-8 65534",
      ], here.stderr);
      const own = await cli(["--database", db.url, "job", "run", "own", "--here"], {
        cwd: db.dir,
        env: caller,
      });
      assertEquals([own.code, own.stdout.split("\n")[0]], [
        0,
        "/nonexistent nobody own / none C.UTF-8 65534",
      ], own.stderr);
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `serve[${backend}]: a job whose user's account has expired is an error naming it, its expiry day and the fix`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await withTestAccount(async (name) => {
        const expire = await new Deno.Command("chage", { args: ["-E", "0", name] }).output();
        assertEquals(expire.code, 0, new TextDecoder().decode(expire.stderr));
        await using db = await freshDatabase(backend);
        await jm(
          db,
          "job",
          "add",
          "expired",
          "--cron",
          "0 0 1 1 *",
          "--user",
          name,
          "--command",
          "true",
        );
        await using serve = await startServe(db);
        await ready(db, serve);
        await jm(db, "job", "run", "expired");
        const [run] = await waitFor(async () => {
          const all = await runs(db);
          return all.length === 1 && all[0].finished_at !== null ? all : undefined;
        }, { timeoutMs: 20_000, what: "the run to end", detail: runsDetail(db) });
        assertEquals([run.status, run.note], [
          "error",
          `job expired runs as '${name}', whose account ${name} expired on 1970-01-01 (its shadow expiry date, as \`chage -l ${name}\` shows): as cron, jobsmanager runs no job of an expired account; renew it (chage -E -1 ${name}), or remove the job's user (jobsmanager job update expired --user '')`,
        ]);
        assertEquals((await serve.terminate()).status.code, 0, serve.stderr);
      });
    },
  });
}
