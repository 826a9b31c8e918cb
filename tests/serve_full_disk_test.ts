/**
 * `jobsmanager serve` on a SQLite file whose filesystem fills up, for
 * real (a tmpfs, so root only), end to end: /readyz says the database
 * refuses writes and why, /metrics says it is not up, `status` says the
 * service's process still runs and what a restart would lose; once space
 * is freed, /readyz says ready again.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { jm, waitFor } from "./helpers.ts";
import { ADMIN } from "./http_harness.ts";
import { Serve, TEST_SETTINGS } from "./serve_helpers.ts";
import { ROOT, skipLine, TinyFilesystem } from "./tiny_filesystem.ts";

skipLine("serve on a full filesystem");

Deno.test({
  name:
    "serve[sqlite]: on a full disk, /readyz, /metrics and status say the database refuses writes, and ready again once space is freed",
  ignore: !ROOT,
  async fn() {
    await using fs = await TinyFilesystem.mount(8192);
    const db = fs.database();
    // The config and the log off the filesystem that fills.
    const dir = await Deno.makeTempDir({ prefix: "jm-full-serve-" });
    try {
      const config = `${dir}/config.json5`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          jobsmanager: { ...TEST_SETTINGS, heartbeat_interval: 1 },
          log: { path: `${dir}/log` },
          http: { listen: "127.0.0.1:0" },
        }),
      );
      const add = await jm(db, "job", "add", "tick", "--command", "true", "--second", "*");
      assertEquals(add.code, 0, add.stderr);
      await using serve = new Serve(db, config, { JM_HTTP_TOKEN: ADMIN });
      const url = await waitFor(() => serve.stderr.match(/"url":"(http:[^"]+)"/)?.[1], {
        timeoutMs: 20_000,
        what: "serve to log where its HTTP side listens",
        detail: () => serve.stderr,
      });
      const get = async (path: string) => {
        const res = await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${ADMIN}` } });
        return { status: res.status, text: await res.text() };
      };
      const readyz = async () => {
        const { status, text } = await get("/readyz");
        return { status, body: JSON.parse(text) as { database: { detail: string } } };
      };
      await waitFor(async () => (await readyz()).status === 200, {
        timeoutMs: 20_000,
        what: "/readyz to say ready",
        detail: () => serve.stderr,
      });

      await fs.fill();
      const refused = await waitFor(async () => {
        const r = await readyz();
        return /refuses writes/.test(r.body.database.detail) ? r : undefined;
      }, {
        timeoutMs: 30_000,
        what: "/readyz to say the database refuses writes",
        detail: async () => `${JSON.stringify((await readyz()).body)}\n${serve.stderr}`,
      });
      assertEquals(refused.status, 503);
      assertMatch(
        refused.body.database.detail,
        /^the database refuses writes: cannot write the SQLite database \S+: the filesystem holding \S+ is full .*; free space on it, .*; jobs keep firing, and (1 run record waits|\d+ run records wait) in memory, written once it takes writes again \(a restart meanwhile loses them\)$/,
      );
      const metrics = (await get("/metrics")).text;
      assertMatch(metrics, /^jobsmanager_database_up 0$/m);
      assertMatch(metrics, /^jobsmanager_database_writes_refused 1$/m);
      // Its heartbeats are refused too: stale after 3 of them, its process running here.
      const status = await waitFor(async () => {
        const s = await jm(db, "status");
        return s.code === 1 && /still runs/.test(s.stderr) ? s : undefined;
      }, {
        timeoutMs: 30_000,
        what: "status to say the stale service's process still runs",
        detail: async () => (await jm(db, "status")).stderr,
      });
      assertMatch(
        status.stderr,
        new RegExp(
          `stopped sending heartbeats, but its process still runs on this host: .*a restart loses the run records it holds unwritten`,
        ),
      );

      await fs.free();
      await waitFor(async () => (await readyz()).status === 200, {
        timeoutMs: 60_000,
        what: "/readyz to say ready once space is freed",
        detail: async () => `${JSON.stringify((await readyz()).body)}\n${serve.stderr}`,
      });
      const { status: exit } = await serve.terminate(20_000);
      assertEquals(exit.code, 0, serve.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
