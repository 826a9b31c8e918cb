/** Config loading: file < environment < flags, the original global.json, and errors that name the key. */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { cli } from "./helpers.ts";
import { CONFIG_KEYS, defaultSettings, inheritedEnv, loadConfig } from "../src/config/config.ts";
import { ValidationError } from "../src/errors.ts";
import { resolveTarget } from "../src/config/database.ts";
import { describeTarget } from "../src/store/target.ts";
import { originalGlobalJson } from "./fixtures.ts";

async function withFile(text: string, fn: (path: string) => void | Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("no config file: defaults, embedded SQLite in the working directory", () => {
  const loaded = loadConfig({}, {});
  // The test runs from the repository, where ./etc/jobsmanager.json holds the defaults.
  assertEquals(loaded.settings, defaultSettings());
  assertEquals(resolveTarget(loaded.settings), { kind: "sqlite", path: "jobsmanager.db" });
  // As cron's: without -oi, sendmail ends the mail at a line of a run's output holding only ".".
  assertEquals(loaded.settings["notify.sendmail"], "/usr/sbin/sendmail -t -oi");
});

Deno.test("the original global.json loads as it is, quirks included", async () => {
  await withFile(originalGlobalJson(), (path) => {
    const { settings, file } = loadConfig({ config: path }, {});
    assertEquals(file, path);
    assertEquals(settings["db.port"], 3306);
    assertEquals(settings["jobsmanager.coalesce"], false);
    assertEquals(settings["jobsmanager.reload_interval"], 10);
    assertEquals(settings["jobsmanager.timezone"], "Asia/Hong_Kong");
    assertEquals(settings["log.level"], "debug");
    const target = resolveTarget(settings);
    assertEquals(target.kind, "mysql");
    // Its password is db.password's, in no URL: the URL shown has none.
    assertEquals(describeTarget(target), "mysql://root@172.18.0.7:3306/workflow");
  });
});

Deno.test("environment overrides the file; --database overrides both", async () => {
  await withFile(`{ db: { url: "sqlite:/from/file.db" }, log: { level: "error" } }`, (path) => {
    const env = { JM_CONFIG: path, JM_DATABASE_URL: "sqlite:/from/env.db", JM_LOG_LEVEL: "WARN" };
    const viaEnv = loadConfig({}, env);
    assertEquals(viaEnv.settings["db.url"], "sqlite:/from/env.db");
    assertEquals(viaEnv.settings["log.level"], "warning");
    const viaFlag = loadConfig({ database: "sqlite:/from/flag.db" }, env);
    assertEquals(viaFlag.settings["db.url"], "sqlite:/from/flag.db");
  });
});

Deno.test("a password file supplies the password; a password above the file overrides it; one beside it in the file is ambiguous", async () => {
  await withFile("s3cret-from-file\n", async (pwFile) => {
    await withFile(`{ db: { host: "db.example", password_file: "${pwFile}" } }`, (path) => {
      const password = (env: Record<string, string>, database?: string) => {
        const target = resolveTarget(loadConfig({ config: path, database }, env).settings);
        return target.kind === "mysql" ? target.password : null;
      };
      assertEquals(password({}), "s3cret-from-file");
      assertEquals(password({ JM_DB_PASSWORD: "from-env" }), "from-env");
      assertEquals(
        password({ JM_DATABASE_URL: "mysql://jobs:from-url@db.example/jobsmanager" }),
        "from-url",
      );
      assertEquals(password({}, "mysql://jobs:from-flag@db.example/jobsmanager"), "from-flag");
      // A URL without a password leaves the file's.
      assertEquals(
        password({ JM_DATABASE_URL: "mysql://jobs@db.example/jobsmanager" }),
        "s3cret-from-file",
      );
    });
    await withFile(
      `{ db: { host: "db.example", password: "in-file", password_file: "${pwFile}" } }`,
      (path) => {
        assertThrows(
          () => resolveTarget(loadConfig({ config: path }, {}).settings),
          ValidationError,
          "db.password_file: a password is also given",
        );
      },
    );
  });
});

const BAD_CONFIGS: [name: string, text: string, message: string][] = [
  [
    "unknown key",
    `{ jobsmanager: { reload_intervall: 2 } }`,
    "unknown key 'jobsmanager.reload_intervall' (known here: table, timezone,",
  ],
  ["unknown section", `{ database: {} }`, "unknown key 'database'"],
  ["malformed JSON5", `{ db: { port: 3306 `, "not valid JSON5: unexpected end of input"],
  [
    "every unknown key, not the first alone",
    `{ db: { hots: "x" }, log: { pth: "y" } }`,
    "unknown keys 'db.hots' (known here: url, host, port, username, password, password_file, database, charset, pool_size, connect_timeout, socket, ssl_mode, ssl_ca, ssl_cert, ssl_key); 'log.pth' (known here: level,",
  ],
  [
    "an empty log file name",
    `{ log: { file: "" } }`,
    `log.file: "" is not valid (expected a file name: not empty, without a '/'; the directory is log.path)`,
  ],
  [
    "port not a number",
    `{ db: { port: "mysql" } }`,
    'db.port: "mysql" is not valid (expected a whole number from 1 to 65535)',
  ],
  [
    "negative days of reload markers kept",
    `{ changes: { keep_days: -1 } }`,
    "changes.keep_days: -1 is not valid (expected a whole number from 0 to 36500)",
  ],
  [
    "negative reload interval",
    `{ jobsmanager: { reload_interval: -1 } }`,
    "jobsmanager.reload_interval: -1 is not valid (expected a number of seconds from 0.1 to 3600)",
  ],
  [
    "coalesce not a boolean",
    `{ jobsmanager: { coalesce: "maybe" } }`,
    'jobsmanager.coalesce: "maybe" is not valid (expected true or false)',
  ],
  [
    "unknown log level",
    `{ log: { level: "loud" } }`,
    'log.level: "loud" is not valid (expected one of debug, info, warning, error, fatal)',
  ],
  [
    "unknown time zone",
    `{ jobsmanager: { timezone: "Mars/Olympus" } }`,
    "jobsmanager.timezone: timezone: 'Mars/Olympus' is not a known IANA time zone",
  ],
  ["section not an object", `{ db: 5 }`, "db must be an object"],
  [
    "an empty sendmail, which would drop every mail",
    `{ notify: { mailto: "ops@example.com", sendmail: " " } }`,
    'notify.sendmail: is empty, which would drop every mail; give the command that sends a mail read on stdin, e.g. "/usr/sbin/sendmail -t -oi" (the default; or "/usr/bin/msmtp -t"), or set notify.mailto to "" to send no mail',
  ],
  [
    "other jobs table",
    `{ jobsmanager: { table: "apscheduler_jobs" } }`,
    'jobsmanager.table: "apscheduler_jobs" is not valid (jobsmanager always uses "jm_jobs"; remove the key)',
  ],
];

for (const [name, text, message] of BAD_CONFIGS) {
  Deno.test(`config error: ${name}`, async () => {
    await withFile(text, (path) => {
      const error = assertThrows(() => loadConfig({ config: path }, {}), ValidationError, message);
      assertEquals(error.message.startsWith(`config ${path}: `), true, error.message);
    });
  });
}

Deno.test("config error: a charset but utf8mb4, which would corrupt text, is refused with the fix", async () => {
  const problem =
    "is not utf8mb4, which jobsmanager's tables use: characters beyond it (😀 in utf8, é in latin1) would be stored changed or cut, in jobs, their output and log lines";
  for (const charset of ["latin1", "utf8", "utf8mb3"]) {
    await withFile(`{ db: { charset: "${charset}" } }`, (path) => {
      assertThrows(
        () => loadConfig({ config: path }, {}),
        ValidationError,
        `db.charset: "${charset}" ${problem}; set it to utf8mb4, or remove the key`,
      );
    });
    assertThrows(
      () => resolveTarget({ ...defaultSettings(), "db.url": `mysql://u@h/d?charset=${charset}` }),
      ValidationError,
      `db.url: charset=${charset} ${problem}; write ?charset=utf8mb4 in the URL, or leave it out`,
    );
  }
  await withFile(`{ db: { charset: "UTF8MB4" } }`, (path) => {
    assertEquals(loadConfig({ config: path }, {}).settings["db.charset"], "UTF8MB4");
  });
});

Deno.test("config error: a bad environment value names the variable", () => {
  assertThrows(
    () => loadConfig({}, { JM_MAX_WORKERS: "lots" }),
    ValidationError,
    'environment JM_MAX_WORKERS: jobsmanager.max_workers: "lots" is not valid',
  );
});

Deno.test("notify: webhook URLs and the signing key come from the environment; a bad URL is not shown", () => {
  const { settings } = loadConfig({}, {
    JM_NOTIFY_ON_FAILURE_URL: "https://hooks.example.com/x?token=abc",
    JM_NOTIFY_WEBHOOK_SECRET: "signing-key",
    JM_NOTIFY_MAILTO: "ops@example.com",
  });
  assertEquals(
    [
      settings["notify.on_failure_url"],
      settings["notify.webhook_secret"],
      settings["notify.mailto"],
      settings["notify.min_interval"],
    ],
    ["https://hooks.example.com/x?token=abc", "signing-key", "ops@example.com", 300],
  );
  const error = assertThrows(
    () => loadConfig({}, { JM_NOTIFY_ON_RECOVERY_URL: "ftp://user:s3cret@host/" }),
    ValidationError,
  );
  assertEquals(
    error.message,
    "environment JM_NOTIFY_ON_RECOVERY_URL: notify.on_recovery_url: is not an http:// or https:// URL (the value is not shown: it may hold a secret)",
  );
});

Deno.test("config error: --config naming a missing file", () => {
  assertThrows(
    () => loadConfig({ config: "/nonexistent/jm.json" }, {}),
    ValidationError,
    "config file '/nonexistent/jm.json' (from --config) does not exist",
  );
});

Deno.test("database URLs: sqlite and mysql forms, with the password never described", () => {
  const target = (url: string) => resolveTarget({ ...defaultSettings(), "db.url": url });
  assertEquals(target("sqlite:/var/lib/jm/jobs.db"), {
    kind: "sqlite",
    path: "/var/lib/jm/jobs.db",
  });
  const my = target("mysql://jm:p%40ss@db.local:3307/sched?charset=utf8mb4_unicode_ci");
  assertEquals(
    my.kind === "mysql" && [my.user, my.password, my.host, my.port, my.database, my.charset],
    [
      "jm",
      "p@ss",
      "db.local",
      3307,
      "sched",
      "utf8mb4_unicode_ci",
    ],
  );
  assertEquals(describeTarget(my), "mysql://jm:***@db.local:3307/sched");
  assertThrows(
    () => target("postgres://x@y/z"),
    ValidationError,
    "scheme 'postgres:' is not supported",
  );
  const error = assertThrows(
    () => target("mysql://u:topsecret@dbhost"),
    ValidationError,
    "must name a host and a database",
  );
  assertEquals(error.message.includes("topsecret"), false);
});

Deno.test("each setting says where it came from: the environment over the file, or the file", async () => {
  await withFile('{ log: { path: "from-file", file: "x.log" } }', (path) => {
    const { sources } = loadConfig({ config: path, database: "sqlite:a.db" }, {
      JM_LOG_PATH: "/var/log/jobsmanager",
    });
    assertEquals(sources, {
      "log.path": `$JM_LOG_PATH, over "from-file" in config ${path}`,
      "log.file": `config ${path}`,
      "db.url": "--database",
    });
  });
});

Deno.test("the README's configuration section names every JM_* variable the config reads", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(
    readme.indexOf("\n## Configuration"),
    readme.indexOf("\n## Development"),
  );
  const read = Object.values(CONFIG_KEYS).flatMap((spec) => "env" in spec ? [spec.env] : []);
  const missing = ["JM_CONFIG", ...read].filter((name) => !section.includes(`\`${name}\``));
  assertEquals(missing, []);
});

Deno.test("config error: --config naming a directory says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assertThrows(
      () => loadConfig({ config: dir }, {}),
      ValidationError,
      `config file '${dir}' (from --config) is a directory; name the file in it (…/jobsmanager.json)`,
    );
  } finally {
    await Deno.remove(dir);
  }
});

/** `job list` run from a folder holding `etc/jobsmanager.json` made by `prepare`. */
async function listFrom(prepare: (config: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "jm-cwdconfig-" });
  try {
    await Deno.mkdir(`${dir}/etc`);
    const config = `${dir}/etc/jobsmanager.json`;
    await Deno.writeTextFile(config, `{ db: { url: "sqlite:${dir}/theirs.db" } }`);
    await prepare(config);
    return await cli(["job", "list"], { cwd: dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a config in the working directory that every user may write is not read", async () => {
  const listed = await listFrom((config) => Deno.chmod(config, 0o666));
  assertEquals(listed.code, 2, listed.stderr);
  assertStringIncludes(listed.stderr, "is writable by every user");
  assertStringIncludes(listed.stderr, "chmod go-w './etc/jobsmanager.json'");
  assert(!listed.stderr.includes("theirs.db"), "the database it names was looked for");
});

Deno.test({
  name:
    "a config in the working directory writable by another group is not read; by one's own, it is",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const listed = await listFrom(async (config) => {
      await Deno.chown(config, 0, 4242);
      await Deno.chmod(config, 0o664);
    });
    assertEquals(listed.code, 2, listed.stderr);
    assertStringIncludes(listed.stderr, "is writable by group 4242, neither yours nor root's");
    const own = await listFrom(async (config) => {
      await Deno.chown(config, 0, 0);
      await Deno.chmod(config, 0o664);
    });
    assertStringIncludes(own.stderr, "theirs.db", "a file root's group may write was refused");
  },
});

Deno.test({
  name: "a config in the working directory owned by another user is not read",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const listed = await listFrom((config) => Deno.chown(config, 4242, 4242));
    assertEquals(listed.code, 2, listed.stderr);
    assertStringIncludes(listed.stderr, "is owned by uid 4242, neither you (uid 0) nor root");
    assertStringIncludes(listed.stderr, "name the file with --config if you trust it");
    assert(!listed.stderr.includes("theirs.db"), "the database it names was looked for");
    // Named, it is the caller's choice.
    const named = await listFrom(async (config) => {
      await Deno.chown(config, 4242, 4242);
      const read = await cli(["--config", config, "job", "list"]);
      assertStringIncludes(read.stderr, "no database at");
      assertStringIncludes(read.stderr, "theirs.db");
    });
    assertEquals(named.code, 2);
  },
});

/**
 * loadConfig as a caller without capabilities (root then meets file
 * permissions as other users do), in `cwd`, looking for a config where
 * `searched` says: the error's message, or "" when it loaded.
 */
async function loadWithoutCapabilities(cwd: string, searched: string[]): Promise<string> {
  const script = `import { loadConfig } from ${
    JSON.stringify(new URL("../src/config/config.ts", import.meta.url).href)
  };
try { loadConfig({}, {}, ${
    JSON.stringify(searched)
  }); console.log(""); } catch (error) { console.log(error.message); }`;
  const out = await new Deno.Command("setpriv", {
    args: [
      "--bounding-set=-all",
      Deno.execPath(),
      "eval",
      "--quiet",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      script,
    ],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, stderr);
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test({
  name:
    "a config behind a directory closed to the caller is an error where the install puts it, missing in the working directory",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "jm-config-" });
    try {
      for (const sub of ["install", "cwd"]) {
        await Deno.mkdir(`${dir}/${sub}/etc`, { recursive: true });
        await Deno.writeTextFile(
          `${dir}/${sub}/etc/jobsmanager.json`,
          `{ db: { url: "sqlite:${dir}/its.db" } }`,
        );
        // As /etc/jobsmanager is to a user outside its group.
        await Deno.chown(`${dir}/${sub}/etc`, 4242, 4242);
        await Deno.chmod(`${dir}/${sub}/etc`, 0o750);
      }
      const installed = `${dir}/install/etc/jobsmanager.json`;
      assertEquals(
        await loadWithoutCapabilities(dir, [installed]),
        `config file '${installed}' cannot be looked at: a directory on its path is closed to you (uid 0); run as a user who may read it (root, or a member of its directory's group), or name another file with --config`,
      );
      // An etc of something else in the working directory (or the directory itself, closed: sudo -u
      // from root's home) hides nothing of the install's: the next path is looked at.
      assertEquals(await loadWithoutCapabilities(`${dir}/cwd`, ["./etc/jobsmanager.json"]), "");
      assertStringIncludes(
        await loadWithoutCapabilities(`${dir}/cwd`, ["./etc/jobsmanager.json", installed]),
        "cannot be looked at",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a config named by --config behind a directory closed to the caller is an error naming it",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "jm-config-" });
    try {
      await Deno.mkdir(`${dir}/etc`);
      await Deno.writeTextFile(
        `${dir}/etc/jobsmanager.json`,
        `{ db: { url: "sqlite:${dir}/its.db" } }`,
      );
      await Deno.chown(`${dir}/etc`, 4242, 4242);
      await Deno.chmod(`${dir}/etc`, 0o750);
      const named = await cli(["--config", `${dir}/etc/jobsmanager.json`, "job", "list"], {
        cwd: dir,
        withoutCapabilities: true,
      });
      assertEquals(named.code, 2, named.stderr);
      assertStringIncludes(named.stderr, "cannot be looked at");
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["etc"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a job inherits JM_DATABASE_URL without its password, a relative sqlite: path made absolute, and no secret", () => {
  const secrets = {
    JM_DB_PASSWORD: "pw-from-env",
    JM_HTTP_TOKEN: "token-from-env",
    PATH: "/usr/bin:/bin",
  };
  const inherited = (url: string) =>
    inheritedEnv({ ...secrets, JM_DATABASE_URL: url }, "/srv/jobs").JM_DATABASE_URL;
  assertEquals(inheritedEnv(secrets, "/srv/jobs"), { PATH: "/usr/bin:/bin" });
  assertEquals(
    inherited("mysql://jobs:s%40cret@db.example:3307/jobsmanager?charset=utf8mb4"),
    "mysql://jobs@db.example:3307/jobsmanager?charset=utf8mb4",
  );
  assertEquals(
    inherited("mysql://jobs@db.example/jobsmanager"),
    "mysql://jobs@db.example/jobsmanager",
  );
  assertEquals(
    inherited("sqlite:/var/lib/jobsmanager/jobs.db"),
    "sqlite:/var/lib/jobsmanager/jobs.db",
  );
  assertEquals(inherited("sqlite:///var/lib/jobs.db"), "sqlite:///var/lib/jobs.db");
  assertEquals(inherited("sqlite:jobs.db"), "sqlite:/srv/jobs/jobs.db");
  // TLS files too: the job may run in another directory.
  assertEquals(
    inherited("mysql://jobs@db.example/j?ssl-ca=tls/ca+1.pem&ssl-cert=/etc/c.pem&ssl-key=k.pem"),
    "mysql://jobs@db.example/j?ssl-ca=%2Fsrv%2Fjobs%2Ftls/ca+1.pem&ssl-cert=/etc/c.pem&ssl-key=%2Fsrv%2Fjobs%2Fk.pem",
  );
  // Not a URL: it may hold a password anywhere.
  assertEquals(inherited("root:pw@db.example"), undefined);
});
