/**
 * Jobs as a file: what `export` writes, `apply` of it as a no-op, adds,
 * updates, --prune, --dry-run, and validation errors that name the file,
 * the line and the field. On every backend; the CLI as a subprocess.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { buildJob, type Job } from "../src/domain/job.ts";
import { candidatesFromFile, exportJobs } from "../src/app/jobs_file.ts";
import { CONTROL } from "../src/domain/printable.ts";
import { parse } from "yaml";
import {
  BACKENDS,
  cli,
  freshDatabase,
  rawQuery,
  type TestDatabase,
  warningsIn,
  withExpiredAccount,
} from "./helpers.ts";

const NOW = 1_700_000_000_000;

/** Jobs with every kind of field: defaults, a zone, env, an nth weekday, disabled. */
function sampleJobs(): Job[] {
  return [
    buildJob(
      "backup",
      {
        command: "/usr/local/bin/backup.sh --full",
        cron: "30 2 * * mon-fri",
        timezone: "Europe/Berlin",
        timeout: "600",
        env: ["TARGET=/mnt/backup", "A=1"],
        description: "nightly: the wiki",
      },
      null,
      NOW,
    ),
    buildJob(
      "report",
      {
        command: `echo "it's the 2nd friday"`,
        schedule: { hour: "9", day: "2nd fri" },
        enabled: false,
        max_instances: "2",
        coalesce: true,
        misfire_grace_time: "30",
        cwd: "/tmp",
        user: "www-data",
      },
      null,
      NOW,
    ),
    buildJob("tick", { command: "date", schedule: { second: "*/10" } }, null, NOW),
  ];
}

const JSON5_EXPORT =
  `// jobsmanager jobs; \`jobsmanager apply FILE\` makes the database match this file
{
  jobs: [
    {
      id: 'backup',
      command: '/usr/local/bin/backup.sh --full',
      second: '0',
      minute: '30',
      hour: '2',
      day: '*',
      month: '*',
      day_of_week: 'mon-fri',
      timezone: 'Europe/Berlin',
      timeout: 600,
      env: {
        A: '1',
        TARGET: '/mnt/backup',
      },
      description: 'nightly: the wiki',
    },
    {
      id: 'report',
      command: 'echo "it\\'s the 2nd friday"',
      second: '0',
      minute: '0',
      hour: '9',
      day: '2nd fri',
      month: '*',
      day_of_week: '*',
      enabled: false,
      max_instances: 2,
      coalesce: true,
      misfire_grace_time: 30,
      cwd: '/tmp',
      user: 'www-data',
    },
    {
      id: 'tick',
      command: 'date',
      second: '*/10',
      minute: '*',
      hour: '*',
      day: '*',
      month: '*',
      day_of_week: '*',
    },
  ],
}
`;

Deno.test("export writes only non-default fields, in id and column order", () => {
  assertEquals(exportJobs(sampleJobs(), "json5"), JSON5_EXPORT);
  const yaml = exportJobs(sampleJobs(), "yaml");
  assertStringIncludes(
    yaml,
    `  - id: tick\n    command: date\n    second: "*/10"\n    minute: "*"\n    hour: "*"\n    day: "*"\n    month: "*"\n    day_of_week: "*"\n`,
  );
  for (const format of ["json5", "yaml"] as const) {
    const path = `jobs.${format}`;
    const back = candidatesFromFile(path, exportJobs(sampleJobs(), format), NOW);
    assertEquals(back.map((c) => c.job), sampleJobs(), format);
  }
});

Deno.test("a file entry reads like job add: the CronTrigger rule, cron, null for the default", () => {
  const [hour, cron, reset, uid] = candidatesFromFile(
    "jobs.yaml",
    [
      "jobs:",
      "  - {id: a, command: x, hour: 3}",
      "  - {id: b, command: x, cron: '*/5 * * * 1-5'}",
      "  - {id: c, command: x, minute: 0, timezone: null, cwd: null, user: null}",
      // A uid as a passwd line writes it.
      "  - {id: d, command: x, minute: 0, user: 33}",
    ].join("\n"),
    NOW,
  ).map((c) => c.job!);
  assertEquals([hour.second, hour.minute, hour.hour, hour.day], ["0", "0", "3", "*"]);
  assertEquals([cron.minute, cron.day_of_week], ["*/5", "mon-fri"]);
  assertEquals([reset.timezone, reset.cwd, reset.user], [null, null, null]);
  assertEquals(uid.user, "33");
});

Deno.test("retries and a follow-up job without a schedule go out and come back (issue 13)", () => {
  const jobs = [
    buildJob("a", { command: "x", cron: "@daily", retries: "2", retry_on: "failed" }, null, NOW),
    buildJob("b", { command: "y", after: "a:always" }, null, NOW),
  ];
  const json5 = exportJobs(jobs, "json5");
  assertStringIncludes(json5, "retries: 2,\n      retry_on: 'failed',\n");
  assertStringIncludes(
    json5,
    "id: 'b',\n      command: 'y',\n      after_job: 'a',\n      after_outcome: 'always',\n",
  );
  for (const format of ["json5", "yaml"] as const) {
    const back = candidatesFromFile(`jobs.${format}`, exportJobs(jobs, format), NOW);
    assertEquals(back.map((c) => c.job), jobs, format);
  }
  // An id may end in ":always": after_job names it whole.
  const [colon] = candidatesFromFile(
    "jobs.yaml",
    "jobs:\n  - {id: f, command: y, after_job: 'ns:always'}\n",
    NOW,
  );
  assertEquals([colon.job!.after_job, colon.job!.after_outcome], ["ns:always", "success"]);
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - {id: b, command: y, after_outcome: failure}\n"),
    "jobs.yaml has 1 invalid job; nothing written:\njobs.yaml:2: job 'b': after_outcome: give after_job with it",
  );
});

function invalid(path: string, text: string): string {
  try {
    candidatesFromFile(path, text, NOW);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("the file was accepted");
}

Deno.test("validation errors name the file, the line and the field, all of them", () => {
  const yaml = exportJobs(sampleJobs(), "yaml")
    .replace('minute: "30"', 'minute: "61"')
    .replace("max_instances: 2", "max_instances: many")
    .replace("id: tick", "id: backup");
  assertEquals(
    invalid("jobs.yaml", yaml),
    [
      "jobs.yaml has 3 invalid jobs; nothing written:",
      "jobs.yaml:6: job 'backup': minute: '61' is out of range (allowed 0-59)",
      "jobs.yaml:26: job 'report': max_instances: \"many\" is not valid (allowed: a whole number from 1 to 10000)",
      "jobs.yaml:31: job 'backup': id: 'backup' is already the id of the job on line 3",
    ].join("\n"),
  );
  const json5 = JSON5_EXPORT.replace("timeout: 600", "timeout: -1").replace(
    "cwd: '/tmp'",
    "cwd: 'tmp', colour: 'red'",
  );
  assertEquals(
    invalid("jobs.json5", json5),
    [
      "jobs.json5 has 2 invalid jobs; nothing written:",
      "jobs.json5:14: job 'backup': timeout: \"-1\" is not valid (allowed: a whole number from 0 to 31536000)",
      "jobs.json5:34: job 'report': colour: not a job field (allowed: id, command, cron, second, minute, hour, day, month, day_of_week, timezone, timeout, enabled, max_instances, coalesce, misfire_grace_time, env, cwd, description, retries, retry_delay, retry_max_delay, retry_on, retry_overlap, after_job, after_outcome, on_failure, on_failure_url, on_recovery, on_recovery_url, on_success, on_success_url, alert_after, user)",
    ].join("\n"),
  );
  assertEquals(
    invalid("jobs.json5", "{ jobs: [ { id: 'a', command: 'x' } ] }"),
    'jobs.json5 has 1 invalid job; nothing written:\njobs.json5:1: job \'a\': schedule: missing (give "cron": "m h dom mon dow" or at least one of "second" "minute" "hour" "day" "month" "day_of_week", or "after_job": "JOB" for a job that runs only after another)',
  );
  // A link's errors are at its after_job key, naming the id as written.
  assertEquals(
    invalid(
      "links.yaml",
      "jobs:\n  - id: s1\n    command: x\n    minute: '5'\n    after_job: s1\n" +
        "  - id: s2\n    command: x\n    after_job: bad id\n",
    ),
    [
      "links.yaml has 2 invalid jobs; nothing written:",
      "links.yaml:5: job 's1': after: job 's1' cannot follow itself (s1 → s1)",
      "links.yaml:8: job 's2': after_job: \"bad id\" has characters outside A-Z a-z 0-9 . _ : - (allowed: 1-191 characters of A-Z a-z 0-9 . _ : -)",
    ].join("\n"),
  );
  assertEquals(
    invalid("jobs.json5", "{ jobs: [ }"),
    `jobs.json5:1: JSON5: unexpected character "}" at 1:11`,
  );
  assertMatch(invalid("jobs.yml", "jobs:\n  - id: a\n  id: b\n"), /^jobs\.yml:3: /);
  assertEquals(
    invalid("jobs.yaml", "- id: a\n"),
    "jobs.yaml:1: expected an object with one key, jobs, holding a list of jobs",
  );
});

Deno.test("a key given twice is refused with both lines, in JSON5 as in YAML", () => {
  // JSON5.parse kept the last `jobs`: with --prune, every job of the first list went.
  const twice = [
    "{ jobs: [ { id: 'backup', command: 'b', cron: '30 2 * * *' },",
    "          { id: 'report', command: 'r', cron: '0 7 * * *',",
    "            timeout: 600, timeout: 60 } ],",
    "  jobs: [ { id: 'new-job', command: 'echo hi', cron: '0 8 * * *' } ] }",
  ].join("\n");
  assertEquals(
    invalid("jobs.json5", twice),
    "jobs.json5:3: key 'timeout' is given twice in one object (first on line 3); keep one",
  );
  assertEquals(
    invalid("jobs.json5", twice.replace("timeout: 600, timeout: 60", "timeout: 60")),
    "jobs.json5:4: key 'jobs' is given twice in one object (first on line 1); keep one",
  );
});

Deno.test("JSON5 lines are those of the values, whatever the strings hold", () => {
  const text = [
    "{ jobs: [",
    "  { id: 'a', command: \"echo id: 'b'\", cron: '* * * * *' },",
    "  {",
    "    id: 'b',",
    "    command: 'x',",
    "    cron: '* * * * *', timeout: -1 },",
    "] }",
  ].join("\n");
  assertEquals(
    invalid("jobs.json5", text),
    "jobs.json5 has 1 invalid job; nothing written:\njobs.json5:6: job 'b': timeout: \"-1\" is not valid (allowed: a whole number from 0 to 31536000)",
  );
});

Deno.test("an id that is no string, and a second YAML document, are said so", () => {
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: 2024\n    command: x\n    cron: '* * * * *'\n"),
    "jobs.yaml has 1 invalid job; nothing written:\njobs.yaml:2: job #1: id: 2024 is not a string (an id is text: quote it)",
  );
  assertEquals(
    invalid("jobs.yaml", "jobs: []\n---\njobs: []\n"),
    "jobs.yaml:2: a second YAML document (after ---): a jobs file is one document, with one jobs list",
  );
});

Deno.test("an unquoted cron line or command YAML reads as syntax is said to need quotes", () => {
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    command: x\n    cron: */5 * * * *\n"),
    'jobs.yaml:4: Unexpected alias at node end at line 4, column 15; quote a value holding * & ! % @ ` or ": " (e.g. cron: "*/5 * * * *")',
  );
  assertMatch(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    command: echo hi: there\n"),
    /^jobs\.yaml:3: .*; quote a value holding/,
  );
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    command: x\n    minute: */5\n"),
    'jobs.yaml:4: Unresolved alias (the anchor must be set before the alias): /5; quote a value holding * & ! % @ ` or ": " (e.g. cron: "*/5 * * * *")',
  );
  // Another YAML error, on a line with such a value, gets no such hint.
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    command: echo 50%\n    command: echo 50%\n"),
    "jobs.yaml:4: Map keys must be unique at line 4, column 5",
  );
});

Deno.test("a YAML tag the reader does not know (Ansible's !vault) is refused, naming its line", () => {
  const vault = [
    "jobs:",
    "  - id: a",
    "    command: x",
    "    cron: '@daily'",
    "    env:",
    "      TOKEN: !vault |",
    "        $ANSIBLE_VAULT;1.1;AES256",
    "        6162636465",
  ].join("\n");
  const why =
    "is not one a jobs file knows (only YAML's own, such as !!str): the value under it would be taken as written; give the value itself (an Ansible !vault decrypted, e.g. by a template)";
  assertEquals(invalid("jobs.yaml", vault), `jobs.yaml:6: the tag !vault ${why}`);
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    command: !custom y\n"),
    `jobs.yaml:3: the tag !custom ${why}`,
  );
  // YAML's own tags are read as YAML reads them.
  const [own] = candidatesFromFile(
    "jobs.yaml",
    "jobs:\n  - id: a\n    command: !!str 5\n    cron: '@daily'\n",
    NOW,
  );
  assertEquals(own.job!.command, "5");
});

Deno.test("YAML's .inf and .nan are refused as such, not shown as null", () => {
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    cron: '@daily'\n    command: .inf\n"),
    "jobs.yaml:4: .inf is Infinity to YAML, which no job field takes; quote it if it is text",
  );
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    command: x\n    timeout: -.INF\n"),
    "jobs.yaml:4: -.INF is -Infinity to YAML, which no job field takes; quote it if it is text",
  );
  assertEquals(
    invalid("jobs.yaml", "jobs:\n  - id: a\n    command: x\n    retries: .NaN\n"),
    "jobs.yaml:4: .NaN is NaN to YAML, which no job field takes; quote it if it is text",
  );
});

Deno.test("YAML aliases that would expand beyond reason are refused, naming the file", () => {
  const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
  for (const name of "bcdef") {
    const previous = String.fromCharCode(name.charCodeAt(0) - 1);
    levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`);
  }
  assertMatch(
    invalid("bomb.yaml", `${levels.join("\n")}\njobs: []\n`),
    /^bomb\.yaml:1: Excessive alias count .*; expand the aliases by hand$/,
  );
});

Deno.test("a lone surrogate is refused: stored, it would come back as U+FFFD", () => {
  assertEquals(
    invalid("jobs.json5", "{ jobs: [ { id: 'a', command: 'echo \\uD800', cron: '* * * * *' } ] }"),
    "jobs.json5 has 1 invalid job; nothing written:\njobs.json5:1: job 'a': command: holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair), which is no character and cannot be stored; remove it",
  );
});

async function counts(db: TestDatabase): Promise<{ jobs: number; markers: number }> {
  const [j] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_jobs");
  const [m] = await rawQuery(db, "SELECT COUNT(*) AS n FROM jm_update_info");
  return { jobs: Number(j.n), markers: Number(m.n) };
}

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]`, async (t) => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args]);
    const file = (name: string) => `${db.dir}/${name}`;
    /** `export` in each format, then `apply` of it: nothing to write. */
    const roundTrip = async (name: string) => {
      for (const format of ["json5", "yaml"]) {
        const exported = await jm("export", "--format", format);
        assertEquals(exported.code, 0, exported.stderr);
        await Deno.writeTextFile(file(`${name}.${format}`), exported.stdout);
        const applied = await jm("apply", file(`${name}.${format}`));
        assertEquals(
          applied.stdout,
          `file ${file(`${name}.${format}`)}:\n0 new, 3 same, 0 differ; nothing to write\n`,
        );
      }
    };

    await t.step("apply adds every job of a file with one marker", async () => {
      await Deno.writeTextFile(file("jobs.json5"), JSON5_EXPORT);
      // On a database not made yet, the plan is against no jobs, and makes nothing.
      const dry = await jm("apply", file("jobs.json5"), "--dry-run");
      assertMatch(
        dry.stdout,
        /3 new, 0 same, 0 differ; nothing written: a dry run\n.* yet: `jobsmanager apply` without --dry-run creates (it|them)\n$/,
      );
      const store = db.open();
      try {
        assertEquals(await store.hasSchema(), false);
      } finally {
        await store.close();
      }
      const applied = await jm("apply", file("jobs.json5"));
      assertEquals(applied.code, 0, applied.stderr);
      assertMatch(
        applied.stdout,
        /3 new, 0 same, 0 differ; changed 3 jobs \(reload marker 1\)\nno live service uses \S+, so nothing applies this yet: .*\n$/,
      );
      assertEquals(await counts(db), { jobs: 3, markers: 1 });
    });

    await t.step("export then apply, in either format, writes nothing", async () => {
      await roundTrip("again");
      assertEquals((await jm("export")).stdout, JSON5_EXPORT);
      assertEquals(await counts(db), { jobs: 3, markers: 1 });
    });

    await t.step(
      "a schedule SQL spelled otherwise is no change; YAML from stdin with --format",
      async () => {
        const spelled =
          "UPDATE jm_jobs SET second = ?, minute = ?, day_of_week = ? WHERE id = 'backup'";
        await rawQuery(db, spelled, [" 0 ", "30", "0-4"]);
        const exported = await jm("export", "--format", "yaml");
        assertStringIncludes(exported.stdout, "day_of_week: 0-4\n");
        const applied = await cli(["--database", db.url, "apply", "-", "--format", "yaml"], {
          input: exported.stdout,
        });
        assertEquals(applied.stdout, "file -:\n0 new, 3 same, 0 differ; nothing to write\n");
        assertEquals(await counts(db), { jobs: 3, markers: 1 });
        await rawQuery(db, spelled, ["0", "30", "mon-fri"]);
      },
    );

    await t.step(
      "a zone in other case and an empty description written in SQL: export then apply writes nothing",
      async () => {
        const sql = "UPDATE jm_jobs SET timezone = ?, description = ? WHERE id = 'backup'";
        await rawQuery(db, sql, ["europe/berlin", ""]);
        await roundTrip("spelled");
        assertEquals(await counts(db), { jobs: 3, markers: 1 });
        // A file that says another zone or a description is a change, as ever.
        const other = JSON5_EXPORT.replace("timezone: 'Europe/Berlin'", "timezone: 'Europe/Paris'");
        await Deno.writeTextFile(file("other.json5"), other);
        const dry = await jm("apply", file("other.json5"), "--dry-run");
        assertStringIncludes(dry.stdout, 'timezone: "europe/berlin" → "Europe/Paris"');
        assertStringIncludes(dry.stdout, 'description: "" → "nightly: the wiki"');
        await rawQuery(db, sql, ["Europe/Berlin", "nightly: the wiki"]);
      },
    );

    await t.step("an edited file updates what changed and keeps the rest", async () => {
      await jm("job", "add", "extra", "--command", "true", "--cron", "@daily");
      const [before] = await rawQuery(db, "SELECT created_at FROM jm_jobs WHERE id = 'backup'");
      // The env in another order is the same env: only the timeout is a change.
      await Deno.writeTextFile(
        file("edited.json5"),
        JSON5_EXPORT.replace("timeout: 600", "timeout: 900")
          .replace(
            "A: '1',\n        TARGET: '/mnt/backup',",
            "TARGET: '/mnt/backup',\n        A: '1',",
          ),
      );
      const applied = await jm("apply", file("edited.json5"), "--json");
      const data = JSON.parse(applied.stdout);
      assertEquals(data.counts, {
        new: 0,
        same: 2,
        differs: 1,
        kept: 0,
        remove: 0,
        stale: 0,
        "cannot import": 0,
      });
      assertEquals(data.entries.find((e: { id: string }) => e.id === "backup").changes, [
        "timeout: 600 → 900",
      ]);
      const [after] = await rawQuery(
        db,
        "SELECT created_at, timeout FROM jm_jobs WHERE id = 'backup'",
      );
      assertEquals([Number(after.created_at), Number(after.timeout)], [
        Number(before.created_at),
        900,
      ]);
      assertEquals(await counts(db), { jobs: 4, markers: 3 });
    });

    await t.step("--prune removes the jobs the file does not name", async () => {
      const pruned = await jm("apply", file("edited.json5"), "--prune");
      assertStringIncludes(pruned.stdout, "remove         extra  (database)\n");
      assertMatch(
        pruned.stdout,
        /0 new, 3 same, 0 differ, 1 to remove; changed 1 job \(reload marker 4\)\nno live service uses \S+, so nothing applies this yet: .*\n$/,
      );
      const ids = await rawQuery(db, "SELECT id FROM jm_jobs ORDER BY id");
      assertEquals(ids.map((r) => r.id), ["backup", "report", "tick"]);
    });

    await t.step("an invalid file exits 2 and writes nothing", async () => {
      const before = await counts(db);
      await Deno.writeTextFile(
        file("bad.yaml"),
        "jobs:\n  - id: a\n    command: x\n    hour: 25\n",
      );
      const bad = await jm("apply", file("bad.yaml"), "--prune");
      assertEquals(bad.code, 2);
      assertEquals(
        bad.stderr,
        `jobsmanager: ${file("bad.yaml")} has 1 invalid job; nothing written:\n${
          file("bad.yaml")
        }:4: job 'a': hour: '25' is out of range (allowed 0-23)\n`,
      );
      // A follow-up link to a job that would not exist, or a cycle: the dry run says so too.
      await Deno.writeTextFile(
        file("links.yaml"),
        "jobs:\n  - id: follower\n    command: x\n    after_job: gone\n" +
          "  - id: ping\n    command: x\n    after_job: pong\n" +
          "  - id: pong\n    command: x\n    after_job: ping\n",
      );
      for (const dry of [["--dry-run"], []]) {
        const links = await jm("apply", file("links.yaml"), ...dry);
        assertEquals([links.code, links.stderr], [
          2,
          "jobsmanager: 3 jobs would follow a job that is not there, or in a cycle; nothing written:\n" +
          `${
            file("links.yaml")
          }:4: job 'follower': after: job 'gone' does not exist, so 'follower' could never follow it (add it first, or see \`jobsmanager job list\`)\n` +
          `${
            file("links.yaml")
          }:7: job 'ping': after: 'ping' following 'pong' would close a cycle: ping → pong → ping (a job's end would start itself again); drop one link with "after_job": null\n` +
          `${
            file("links.yaml")
          }:10: job 'pong': after: 'pong' following 'ping' would close a cycle: pong → ping → pong (a job's end would start itself again); drop one link with "after_job": null\n`,
        ], dry.join(" "));
      }
      await Deno.writeFile(
        file("latin1.yaml"),
        new Uint8Array([...new TextEncoder().encode("jobs:\n  - id: a\n    command: caf"), 0xe9]),
      );
      const latin1 = await jm("apply", file("latin1.yaml"));
      assertEquals([latin1.code, latin1.stderr], [
        2,
        `jobsmanager: ${
          file("latin1.yaml")
        }:3: is not UTF-8 text; convert it (e.g. \`iconv -f latin1 -t utf-8\`) and try again\n`,
      ]);
      assertEquals((await jm("apply", file("missing.json5"))).code, 2);
      assertEquals((await jm("export", "--format", "xml")).code, 2);
      assertEquals(await counts(db), before);
    });
  });
}

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]: a value's trailing newlines, last in a YAML export, come back`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args]);
    const add = ["job", "add", "zz", "--command", "true", "--cron", "@daily"];
    assertEquals((await jm(...add, "--description", "a\n\n", "--env", "E=\n")).code, 0);
    const exported = await jm("export", "--format", "yaml");
    const path = `${db.dir}/newlines.yaml`;
    await Deno.writeTextFile(path, exported.stdout);
    const dry = await jm("apply", path, "--dry-run");
    assertEquals(dry.stdout, `file ${path}:\n0 new, 1 same, 0 differ; nothing to write\n`);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]: a follow-up link kept as stored is not refused; one to a job --prune removes says so`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args]);
    const ok = async (...args: string[]) => {
      const r = await jm(...args);
      assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    await ok("job", "add", "base", "--command", "true", "--cron", "0 1 * * *");
    await ok("job", "add", "f", "--command", "true", "--after", "base");
    // `job remove` leaves its follower idle; the export of what is left applies as it is,
    // here, and says it would not where base does not exist.
    assertStringIncludes(
      await ok("job", "remove", "base"),
      "removed job 'base' (reload marker 3)\nf follows base: it will run only by hand or on its own schedule until relinked: jobsmanager job update --after … f\n",
    );
    const path = `${db.dir}/left.yaml`;
    const exported = await jm("export", "--format", "yaml");
    assertEquals([exported.code, exported.stderr], [
      0,
      "jobsmanager: warning: job 'f' follows 'base', which no longer exists: the file applies here, but `apply` refuses it on a database without 'base'; give 'f' a job to follow (`jobsmanager job update --after JOB f`) or a schedule of its own (`--after '' --cron …`), or remove it\n",
    ]);
    await Deno.writeTextFile(path, exported.stdout);
    assertEquals(
      await ok("apply", path, "--dry-run"),
      `file ${path}:\n0 new, 1 same, 0 differ; nothing to write\n`,
    );
    // A link the file sets, to a stored job the file does not name: --prune would remove it.
    await ok("job", "add", "base", "--command", "true", "--cron", "0 1 * * *");
    const pruned = `${db.dir}/pruned.yaml`;
    await Deno.writeTextFile(pruned, "jobs:\n  - id: g\n    command: x\n    after_job: base\n");
    for (const dry of [["--dry-run"], []]) {
      const refused = await jm("apply", pruned, "--prune", ...dry);
      assertEquals([refused.code, refused.stderr], [
        2,
        "jobsmanager: 1 job would follow a job that is not there, or in a cycle; nothing written:\n" +
        `${pruned}:4: job 'g': after: job 'base' is removed by this change (the source no longer names it), so 'g' could never follow it: keep it, or drop the link\n`,
      ], dry.join(" "));
    }
    // Without --prune, base stays: the link is taken.
    assertMatch(await ok("apply", pruned), /1 new, 0 same, 0 differ; changed 1 job/);
    // Stored as the file has it, the link is refused all the same when --prune removes base.
    const kept = await jm("apply", pruned, "--prune", "--dry-run");
    assertEquals(kept.code, 2, kept.stdout);
    assertStringIncludes(
      kept.stderr,
      `${pruned}:4: job 'g': after: job 'base' is removed by this change`,
    );
  });
}

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]: export refuses rows broken by hand, naming each and the fix; job show names the column`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args]);
    for (const id of ["a", "b", "c", "d", "ok"]) {
      const added = await jm("job", "add", id, "--command", "true", "--cron", "@daily");
      assertEquals(added.code, 0, added.stderr);
    }
    await rawQuery(db, "UPDATE jm_jobs SET env = 'null' WHERE id = 'a'");
    await rawQuery(db, "UPDATE jm_jobs SET env = 'garbage' WHERE id = 'b'");
    await rawQuery(db, `UPDATE jm_jobs SET env = '{"A":1,"B":"x"}' WHERE id = 'c'`);
    await rawQuery(db, "UPDATE jm_jobs SET max_instances = 0 WHERE id = 'd'");
    const faults = {
      a: `env: is null, not an object of NAME: "value" strings (fix the row, e.g. UPDATE jm_jobs SET env = '{}' WHERE id = 'a')`,
      b: `env: is text, not an object of NAME: "value" strings (fix the row, e.g. UPDATE jm_jobs SET env = '{}' WHERE id = 'b')`,
      c: `env.A: is a number; quote it ("…"): a variable's value is text (fix the row, e.g. UPDATE jm_jobs SET env = '{"A":"…","B":"…"}' WHERE id = 'c', each "…" the variable's value as text)`,
      d: "max_instances: 0 is not valid (allowed: a whole number from 1 to 10000, or NULL for the service default)",
    };
    const refused =
      "`apply` would refuse 4 jobs as stored, and so the whole file; nothing written. Fix each (`jobsmanager job update … ID`, or the row in SQL), or remove it (`jobsmanager job remove ID`), then export again:\n" +
      Object.entries(faults).map(([id, fault]) => `job '${id}': ${fault}`).join("\n");
    const yaml = await jm("export", "--format", "yaml");
    assertEquals([yaml.code, yaml.stdout, yaml.stderr], [1, "", `jobsmanager: ${refused}\n`]);
    // Under --json, the same message on one line, its line breaks written \n.
    const json = await jm("export", "--json");
    assertEquals([json.code, json.stdout, json.stderr], [
      1,
      "",
      `${JSON.stringify({ error: { kind: "refused", message: refused, exit_code: 1 } })}\n`,
    ]);
    for (const [id, fault] of Object.entries(faults)) {
      const shown = await jm("job", "show", id);
      assertEquals(shown.code, 0, shown.stderr);
      assertStringIncludes(shown.stdout, `INVALID             ${fault} (the service skips it)\n`);
    }
    assertStringIncludes(
      (await jm("job", "show", "a")).stdout,
      "env                 null (as stored)\n",
    );
    assertStringIncludes(
      (await jm("job", "show", "b")).stdout,
      `env                 "garbage" (as stored)\n`,
    );
    const listed = await jm("job", "list", "--json");
    assertEquals(
      JSON.parse(listed.stdout).map((
        j: { id: string; invalid: string | null },
      ) => [j.id, j.invalid]),
      [...Object.entries(faults), ["ok", null]],
    );
    // A change that sets variables starts from what is usable of the column; any other names it.
    const kept = await jm("job", "update", "b", "--description", "x");
    assertEquals([kept.code, kept.stderr], [2, `jobsmanager: ${faults.b}\n`]);
    const set = await jm("job", "update", "c", "--env", "C=3");
    assertEquals(set.code, 0, set.stderr);
    const [row] = await rawQuery(db, "SELECT env FROM jm_jobs WHERE id = 'c'");
    assertEquals(typeof row.env === "string" ? JSON.parse(row.env) : row.env, {
      A: "1",
      B: "x",
      C: "3",
    });
    // Fixed as said, every job exports, and the file applies to a database without them.
    await rawQuery(db, "UPDATE jm_jobs SET env = '{}' WHERE id IN ('a', 'b')");
    await rawQuery(db, `UPDATE jm_jobs SET env = '{"A":"1","B":"x"}' WHERE id = 'c'`);
    assertEquals((await jm("job", "update", "d", "--max-instances", "2")).code, 0);
    const exported = await jm("export");
    assertEquals([exported.code, exported.stderr], [0, ""]);
    await using other = await freshDatabase("sqlite");
    const path = `${other.dir}/jobs.json5`;
    await Deno.writeTextFile(path, exported.stdout);
    const applied = await cli(["--database", other.url, "apply", path]);
    assertEquals(applied.code, 0, applied.stderr);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]: YAML given as JSON5 says --format yaml; an env value not text names its variable`, async () => {
    await using db = await freshDatabase(backend);
    const yaml = "# our jobs\njobs:\n  - id: a\n    command: x\n    cron: '@daily'\n";
    const piped = await cli(["--database", db.url, "apply", "-"], { input: yaml });
    assertEquals([piped.code, piped.stderr], [
      2,
      `jobsmanager: -:1: JSON5: unexpected character "#" at 1:1; it looks like YAML: give --format yaml (a file named .yaml or .yml is read as YAML)\n`,
    ]);
    const path = `${db.dir}/env.yaml`;
    await Deno.writeTextFile(
      path,
      "jobs:\n  - id: a\n    command: x\n    cron: '@daily'\n    env:\n      B: x\n      NUM: 10\n",
    );
    const env = await cli(["--database", db.url, "apply", path]);
    assertEquals([env.code, env.stderr], [
      2,
      `jobsmanager: ${path} has 1 invalid job; nothing written:\n${path}:5: job 'a': env.NUM: is a number; quote it ("…"): a variable's value is text\n`,
    ]);
    const applied = await cli(["--database", db.url, "apply", "-", "--format", "yaml"], {
      input: yaml,
    });
    assertEquals(applied.code, 0, applied.stderr);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]: export refuses a follow-up cycle written in SQL, naming the link to drop`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args]);
    assertEquals((await jm("job", "add", "a", "--command", "true", "--cron", "@daily")).code, 0);
    assertEquals((await jm("job", "add", "b", "--command", "true", "--after", "a")).code, 0);
    await rawQuery(
      db,
      "UPDATE jm_jobs SET after_job = 'b', after_outcome = 'success' WHERE id = 'a'",
    );
    const exported = await jm("export");
    assertEquals([exported.code, exported.stdout, exported.stderr], [
      1,
      "",
      "jobsmanager: `apply` would refuse 2 jobs as stored, and so the whole file; nothing written. Fix each (`jobsmanager job update … ID`, or the row in SQL), or remove it (`jobsmanager job remove ID`), then export again:\n" +
      "job 'a': after: following 'b' closes a cycle: a → b → a (written in SQL: no command makes one); drop one link (`jobsmanager job update --after '' a`)\n" +
      "job 'b': after: following 'a' closes a cycle: b → a → b (written in SQL: no command makes one); drop one link (`jobsmanager job update --after '' b`)\n",
    ]);
    assertEquals((await jm("job", "update", "a", "--after", "")).code, 0);
    assertEquals((await jm("export")).code, 0);
  });
}

// MySQL's TEXT holds 65,535 bytes; SQLite kept more, and apply on MySQL's terms refuses it.
Deno.test("jobs file cli[sqlite]: export refuses a command longer than apply takes, kept by SQLite", async () => {
  await using db = await freshDatabase("sqlite");
  const jm = (...args: string[]) => cli(["--database", db.url, ...args]);
  assertEquals((await jm("job", "add", "long", "--command", "true", "--cron", "@daily")).code, 0);
  await rawQuery(db, "UPDATE jm_jobs SET command = ? WHERE id = 'long'", ["x".repeat(70_000)]);
  const exported = await jm("export");
  assertEquals([exported.code, exported.stdout], [1, ""]);
  assertStringIncludes(
    exported.stderr,
    "\njob 'long': command: is 70000 bytes long (allowed: up to 65535; a longer script belongs in a file the job reads)\n",
  );
});

Deno.test("export writes control characters and bidi marks as escapes, and they come back", () => {
  const jobs = [
    buildJob(
      "a",
      {
        command: "printf '\u009b31m' \u0085 \u2028",
        cron: "@daily",
        description: "d\u202e",
      },
      null,
      NOW,
    ),
    buildJob(
      "b",
      { command: "echo \u001b]0;T\u0007", cron: "@daily", description: "\u2066x" },
      null,
      NOW,
    ),
  ];
  for (const format of ["json5", "yaml"] as const) {
    const file = exportJobs(jobs, format);
    const raw = file.match(new RegExp(CONTROL.source, "g"));
    assertEquals(raw, null, `${format}: raw ${JSON.stringify(raw)} in ${file}`);
    const back = candidatesFromFile(`jobs.${format}`, file, NOW);
    assertEquals(back.map((c) => c.job), jobs, format);
  }
});

Deno.test("a YAML export quotes the strings a YAML 1.1 reader (PyYAML, Ansible) takes for something else", () => {
  const tricky = [
    "no",
    "Off",
    "y",
    "12:30",
    "1_000",
    "0b101",
    "190:20:30",
    "2026-01-01",
    "1:20:30.5",
    "=",
  ];
  const jobs = [
    buildJob(
      "12:30",
      {
        command: "true",
        cron: "@daily",
        description: "no",
        timezone: "UTC",
        env: tricky.map((value, i) => `V${i}=${value}`),
      },
      null,
      NOW,
    ),
  ];
  const file = exportJobs(jobs, "yaml");
  const read11 = parse(file, { version: "1.1" });
  const [entry] = read11.jobs;
  assertEquals([entry.id, entry.description, Object.values(entry.env)], ["12:30", "no", tricky]);
  // Plain where it reads the same, and its own reader reads it back.
  assertStringIncludes(file, '\n      V0: "no"\n');
  // PyYAML reads a plain `=` as YAML 1.1's value key, and refuses the whole file.
  assertStringIncludes(file, '\n      V9: "="\n');
  assertStringIncludes(file, "\n    timezone: UTC\n");
  assertEquals(candidatesFromFile("jobs.yaml", file, NOW).map((c) => c.job), jobs);
});

Deno.test("a YAML export is read by PyYAML as written: <<, a tab, U+2028 and U+2029", async () => {
  const jobs = [
    buildJob(
      "merge",
      {
        command: "printf 'a\tb\\n'\necho 'two\tlines'",
        cron: "@daily",
        cwd: "/tmp/\ttab",
        description: "para\u2028line\u2029end",
        env: ["X=<<", "T=a\tb", "L=a\u2028b", "P=\u2029"],
      },
      null,
      NOW,
    ),
  ];
  const file = exportJobs(jobs, "yaml");
  assertEquals(file.match(/[\u2028\u2029]/g), null, file);
  const python = new Deno.Command("python3", {
    args: ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = python.stdin.getWriter();
  await writer.write(new TextEncoder().encode(file));
  await writer.close();
  const { code, stdout, stderr } = await python.output();
  const decoder = new TextDecoder();
  assertEquals(code, 0, `PyYAML refused the export:\n${decoder.decode(stderr)}\n${file}`);
  const [entry] = JSON.parse(decoder.decode(stdout)).jobs;
  const [job] = jobs;
  assertEquals(
    [entry.command, entry.cwd, entry.description, entry.env],
    [job.command, job.cwd, job.description, job.env],
  );
  assertEquals(candidatesFromFile("jobs.yaml", file, NOW).map((c) => c.job), jobs);
});

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]: users this host has no account of are applied, each warned once, as import says it`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const warning = (user: string, jobs: string, stored: string) =>
      `jobsmanager: warning: user '${user}' has no account on this host (${Deno.hostname()}): ${stored}, as a service on a host that has it runs its jobs, but a service here records each run of its ${jobs} as an error until it exists; check with \`getent passwd ${user}\``;
    const warnings = (stderr: string) =>
      stderr.split("\n").filter((l) => l.includes(": warning: ") && l.includes("account"));
    const file = `${db.dir}/jobs.json5`;
    const job = (id: string, user: string) =>
      `{ id: '${id}', command: 'true', minute: '0', user: '${user}' }`;
    await Deno.writeTextFile(
      file,
      `{ jobs: [${
        [
          job("one", "jm-ghost-a"),
          job("two", "jm-ghost-b"),
          job("three", "root"),
          job("four", "jm-ghost-a"),
        ].join(", ")
      }] }\n`,
    );
    // A dry run writes nothing, and says so.
    const dryRun = "apply without --dry-run would store them all the same";
    const plan = await jm("apply", file, "--dry-run");
    assertEquals(
      [plan.code, warnings(plan.stderr)],
      [0, [warning("jm-ghost-a", "2 jobs", dryRun), warning("jm-ghost-b", "job", dryRun)]],
      plan.stdout,
    );
    const applied = await jm("apply", file);
    assertEquals(
      [applied.code, warnings(applied.stderr)],
      [0, [
        warning("jm-ghost-a", "2 jobs", "applied all the same"),
        warning("jm-ghost-b", "job", "applied all the same"),
      ]],
      applied.stdout,
    );
    const rows = await rawQuery(db, "SELECT id, `user` FROM jm_jobs ORDER BY id");
    assertEquals(rows.map((r) => `${r.id}: ${r.user}`), [
      "four: jm-ghost-a",
      "one: jm-ghost-a",
      "three: root",
      "two: jm-ghost-b",
    ]);
    // Applied again unchanged, dry run or not: nothing is written, so nothing is warned of.
    for (const args of [["--dry-run"], []]) {
      const again = await jm("apply", file, ...args);
      assertEquals([again.code, warnings(again.stderr)], [0, []], again.stdout);
      assertStringIncludes(again.stdout, "0 new, 4 same");
    }
    // Only the users the write gives a job: two's new one, not one's, whose command alone changes.
    await Deno.writeTextFile(
      file,
      `{ jobs: [${
        [
          `{ id: 'one', command: 'false', minute: '0', user: 'jm-ghost-a' }`,
          job("two", "jm-ghost-c"),
          job("three", "root"),
          job("four", "jm-ghost-a"),
        ].join(", ")
      }] }\n`,
    );
    for (const [args, stored] of [[["--dry-run"], dryRun], [[], "applied all the same"]]) {
      const changed = await jm("apply", file, ...args);
      assertEquals(
        [changed.code, warnings(changed.stderr)],
        [0, [warning("jm-ghost-c", "job", stored as string)]],
        changed.stdout,
      );
      assertStringIncludes(changed.stdout, "0 new, 2 same, 2 differ");
    }
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `jobs file cli[${backend}]: a user whose account is expired is applied with a warning naming the day and the fix, as job add warns`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using db = await freshDatabase(backend);
      const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
      await withExpiredAccount(async (name, warning) => {
        const file = `${db.dir}/jobs.json5`;
        await Deno.writeTextFile(
          file,
          `{ jobs: [{ id: 'nightly', command: 'true', minute: '0', user: '${name}' }] }\n`,
        );
        // Only the warnings: a new SQLite file is said too.
        const plan = await jm("apply", file, "--dry-run");
        assertEquals(
          [plan.code, warningsIn(plan.stderr)],
          [0, [warning("apply without --dry-run would store them all the same")]],
        );
        const applied = await jm("apply", file);
        assertEquals(
          [applied.code, warningsIn(applied.stderr)],
          [0, [warning("applied all the same")]],
        );
        const rows = await rawQuery(db, "SELECT `user` FROM jm_jobs WHERE id = 'nightly'");
        assertEquals(rows.map((r) => r.user), [name]);
      });
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test(`jobs file cli[${backend}]: retry_on with retries 0 is applied with job add's warning; an env change names its variables, never their values`, async () => {
    await using db = await freshDatabase(backend);
    const jm = (...args: string[]) => cli(["--database", db.url, ...args], { cwd: db.dir });
    const file = `${db.dir}/jobs.json5`;
    const write = (fields: string) =>
      Deno.writeTextFile(
        file,
        `{ jobs: [{ id: 'a', command: 'true', cron: '@daily', ${fields} }] }\n`,
      );
    const warning =
      `jobsmanager: warning: job 'a' has retries 0, so "retry_on" does nothing until "retries" is above 0`;
    await write("retry_on: 'failed', env: { KEEP: 'same', TOKEN: 's3cr3t-old', GONE: 'x' }");
    for (const dry of [["--dry-run"], []]) {
      const applied = await jm("apply", file, ...dry);
      assertEquals([applied.code, warningsIn(applied.stderr)], [0, [warning]], applied.stdout);
    }
    // Stored as it was, nothing is written, nor warned of again.
    const again = await jm("apply", file);
    assertEquals([again.code, warningsIn(again.stderr)], [0, []], again.stdout);
    await write(
      "retry_on: 'failed', retries: 1, env: { KEEP: 'same', TOKEN: 's3cr3t-new', NEW: 'y' }",
    );
    for (const dry of [["--dry-run"], []]) {
      const changed = await jm("apply", file, ...dry);
      assertEquals([changed.code, warningsIn(changed.stderr)], [0, []], changed.stderr);
      assertStringIncludes(
        changed.stdout,
        "differs        a  (line 1)\n    env: GONE removed, NEW added, TOKEN changed\n    retries: 0 → 1\n",
      );
      assert(!/s3cr3t|"y"|"x"/.test(changed.stdout), changed.stdout);
      const json = JSON.parse((await jm("apply", file, ...dry, "--json")).stdout);
      // Applied already: the --json run of the write finds it the same.
      if (dry.length > 0) {
        assertEquals(json.entries[0].changes, [
          "env: GONE removed, NEW added, TOKEN changed",
          "retries: 0 → 1",
        ]);
      }
    }
  });
}
