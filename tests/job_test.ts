/** The Job model's comparisons, and the text it refuses. */
import { assertEquals, assertThrows } from "./assert.ts";
import {
  buildJob,
  followCycle,
  type Job,
  JOB_FIELDS,
  type JobOptions,
  parseAfter,
  retryDelayMs,
  sameDefinition,
  validateJob,
} from "../src/domain/job.ts";
import { ValidationError } from "../src/errors.ts";

Deno.test("sameDefinition ignores timestamps and env order, and sees every other field", () => {
  const a = buildJob("j", { command: "true", cron: "* * * * *", env: ["A=1", "B=2"] }, null, 1000);
  assertEquals(sameDefinition(a, { ...a, created_at: 5, updated_at: 6 }), true);
  assertEquals(sameDefinition(a, { ...a, env: { B: "2", A: "1" } }), true);
  const changes: Partial<typeof a>[] = [
    { command: "false" },
    { minute: "5" },
    { timezone: "UTC" },
    { timeout: 5 },
    { enabled: false },
    { max_instances: 2 },
    { coalesce: true },
    { misfire_grace_time: 3 },
    { cwd: "/tmp" },
    { description: "x" },
    { retries: 1 },
    { retry_delay: 5 },
    { retry_max_delay: 60 },
    { retry_on: "failed" },
    { retry_overlap: true },
    { after_job: "x", after_outcome: "success" },
    { env: { A: "1" } },
    { env: { A: "1", B: "3" } },
    { env: { A: "1", B: "2", C: "" } },
  ];
  for (const change of changes) {
    assertEquals(sameDefinition(a, { ...a, ...change }), false, JSON.stringify(change));
  }
  // A column added to jm_jobs is compared too.
  for (const field of JOB_FIELDS) {
    if (field === "env" || field === "created_at" || field === "updated_at") continue;
    const value: unknown = a[field];
    const other = typeof value === "number"
      ? value + 1
      : typeof value === "boolean"
      ? !value
      : `${value}x`;
    assertEquals(sameDefinition(a, { ...a, [field]: other }), false, field);
  }
});

Deno.test("user: a user name or a uid, '' back to the service's own; anything else is refused, saying what is allowed", () => {
  const base: JobOptions = { command: "true", cron: "* * * * *" };
  for (
    const user of [
      "www-data",
      "postgres",
      "_apt",
      "svc.backup",
      "nobody",
      "0",
      "65534",
      "ad$",
      // sssd's names of AD and LDAP accounts, up to the 64 characters the column holds.
      "john.doe@corp",
      "john.doe@corp.example.com",
      `a@${"b".repeat(62)}`,
    ]
  ) {
    assertEquals(buildJob("j", { ...base, user }, null, 1).user, user);
  }
  const set = buildJob("j", { ...base, user: "nobody" }, null, 1);
  assertEquals(buildJob("j", { user: "" }, set, 2).user, null);
  assertEquals(buildJob("j", { description: "x" }, set, 2).user, "nobody", "kept when not given");
  const allowed =
    "(allowed: a name of 1-64 characters of A-Z a-z 0-9 _ . - @ not starting with a digit, ., - or @, or a uid of a whole number from 0 to 4294967294; empty or NULL for the service's own user)";
  for (
    const user of [
      "bob smith",
      "-rf",
      "1abc",
      "4294967295",
      "a".repeat(65),
      "root;id",
      "ünï",
      "@corp",
    ]
  ) {
    const error = assertThrows(
      () => buildJob("j", { ...base, user }, null, 1),
      ValidationError,
      `user: ${JSON.stringify(user)} is not a user name or uid ${allowed}`,
    ) as ValidationError;
    assertEquals(error.field, "user");
  }
  // A DOMAIN\name (winbind's form): refused, naming the form that is taken.
  assertThrows(
    () => buildJob("j", { ...base, user: "CORP\\john" }, null, 1),
    ValidationError,
    `user: "CORP\\\\john" is not a user name or uid ${allowed}; a DOMAIN\\name account: give it as name@domain, as sssd also knows it, or as its uid (id -u)`,
  );
  // A row written by hand with a number in the column: named, with the row's fix.
  assertThrows(
    () => validateJob({ ...set, user: 7 as unknown as string }),
    ValidationError,
    `user: 7 is not a user name or uid ${allowed}; fix the row, e.g. UPDATE jm_jobs SET \`user\` = NULL WHERE id = 'j'`,
  );
});

Deno.test("a description of 1000 characters fits, whatever their size in UTF-16; 1001 do not", () => {
  const job = buildJob("j", { command: "true", cron: "* * * * *" }, null, 1000);
  // Each emoji is two UTF-16 units and one character, as the database's VARCHAR(1000) counts it.
  validateJob({ ...job, description: "😀".repeat(1000) });
  assertThrows(
    () => validateJob({ ...job, description: "😀".repeat(1001) }),
    ValidationError,
    "description: is 1001 characters long (allowed: up to 1000)",
  );
});

Deno.test("a NUL byte is refused in every text a job holds, naming the field", () => {
  const job = buildJob("j", { command: "true", cron: "* * * * *" }, null, 1000);
  const cases: [Partial<typeof job>, string, string][] = [
    [{ id: "a\0b" }, "id", "has characters outside A-Z a-z 0-9 . _ : -"],
    [{ command: "echo a\0rm -rf /" }, "command", "command: contains a NUL byte"],
    [{ env: { A: "x\0y" } }, "env", "env: A contains a NUL byte"],
    [{ cwd: "/tmp\0/x" }, "cwd", "cwd: contains a NUL byte"],
    [{ description: "a\0b" }, "description", "description: contains a NUL byte"],
  ];
  for (const [change, field, message] of cases) {
    const error = assertThrows(
      () => validateJob({ ...job, ...change }),
      ValidationError,
      message,
    ) as ValidationError;
    assertEquals(error.field, field, JSON.stringify(change));
  }
  // Through the options as well: a jobs file or an import builds jobs the same way.
  const error = assertThrows(
    () => buildJob("j", { command: "true", cron: "* * * * *", description: "x\0" }, null, 1),
    ValidationError,
  ) as ValidationError;
  assertEquals(error.field, "description");
});

Deno.test("a lone surrogate is refused in every field a job holds, naming the field", () => {
  const job = buildJob("j", { command: "true", cron: "* * * * *" }, null, 1000);
  for (const field of JOB_FIELDS) {
    const error = assertThrows(
      () => validateJob({ ...job, [field]: "a\ud800b" }),
      ValidationError,
      // An id is held to its own characters first; an env to being an object of strings.
      field === "id"
        ? "has characters outside"
        : field === "env"
        ? "is text, not an object"
        : `${field}: holds a lone UTF-16 surrogate`,
    ) as ValidationError;
    assertEquals(error.field, field);
  }
  for (const env of [{ A: "\udc00" }, { ["\ud800"]: "x" }] as Record<string, string>[]) {
    const error = assertThrows(
      () => validateJob({ ...job, env }),
      ValidationError,
    ) as ValidationError;
    assertEquals(error.field, "env", JSON.stringify(env));
  }
});

Deno.test("a new or changed job fits MySQL's columns; one stored already is not held to them", () => {
  const base: JobOptions = { command: "true", cron: "* * * * *" };
  const fits = "x".repeat(65_535);
  const cases: [JobOptions, JobOptions, string][] = [
    [{ command: fits }, { command: `${fits}x` }, "command"],
    [{ env: [`A=${"x".repeat(65_527)}`] }, { env: [`A=${"x".repeat(65_528)}`] }, "env"],
    [{ cwd: `/${fits.slice(1)}` }, { cwd: `/${fits}` }, "cwd"],
    [{ on_failure: fits }, { on_failure: `${fits}x` }, "on_failure"],
    [
      { on_success_url: `http://h/${fits.slice(9)}` },
      { on_success_url: `http://h/${fits.slice(8)}` },
      "on_success_url",
    ],
  ];
  for (const [fitting, longer, field] of cases) {
    const job = buildJob("j", { ...base, ...fitting }, null, 1);
    const value = field === "env" ? JSON.stringify(job.env) : String(job[field as keyof Job]);
    assertEquals(new TextEncoder().encode(value).length, 65_535, field);
    const error = assertThrows(
      () => buildJob("j", { ...base, ...longer }, null, 1),
      ValidationError,
      `${field}: is 65536 bytes long`,
    ) as ValidationError;
    assertEquals(error.field, field);
  }
  // Bytes, not characters: € is three.
  assertThrows(
    () => buildJob("j", { ...base, command: "€".repeat(21_846) }, null, 1),
    ValidationError,
    "command: is 65538 bytes long",
  );
  assertThrows(
    () => buildJob("j", { command: "true", schedule: { hour: `${"1,".repeat(128)}1` } }, null, 1),
    ValidationError,
    "hour: is 257 characters long (allowed: up to 255)",
  );
  // A longer one SQLite stored before still runs, and its other fields still change.
  const stored = { ...buildJob("j", base, null, 1), command: "x".repeat(70_000) };
  validateJob(stored);
  assertEquals(buildJob("j", { timeout: "5" }, stored, 2).timeout, 5);
  assertThrows(
    () => buildJob("j", { command: "y".repeat(70_000) }, stored, 2),
    ValidationError,
    "command: is 70000 bytes long",
  );
});

Deno.test("'' (null for coalesce) sets the policy fields back to the service's default", () => {
  const set = buildJob(
    "j",
    {
      command: "true",
      cron: "* * * * *",
      max_instances: "3",
      coalesce: true,
      misfire_grace_time: "5",
    },
    null,
    1,
  );
  const reset = buildJob(
    "j",
    { max_instances: "", coalesce: null, misfire_grace_time: "" },
    set,
    2,
  );
  assertEquals([reset.max_instances, reset.coalesce, reset.misfire_grace_time], [null, null, null]);
});

Deno.test("--after splits a known outcome off an id that may hold ':' itself", () => {
  assertEquals(parseAfter("backup"), { job: "backup", outcome: "success" });
  assertEquals(parseAfter("ns:backup:failure"), { job: "ns:backup", outcome: "failure" });
  assertEquals(parseAfter("ns:backup"), { job: "ns:backup", outcome: "success" });
  assertEquals(parseAfter("a:always"), { job: "a", outcome: "always" });
  assertThrows(
    () => parseAfter(":failure"),
    ValidationError,
    'after: ":failure" is not JOB[:success|failure|always] (id: "" is empty',
  );
});

Deno.test("retry delays double from retry_delay, with up to 10 % jitter, capped", () => {
  const job = buildJob(
    "j",
    { command: "x", cron: "@daily", retry_delay: "10", retry_max_delay: "100", retries: "5" },
    null,
    0,
  );
  for (let id = 1; id < 200; id++) {
    for (const [attempt, nominal] of [[1, 10_000], [2, 20_000], [3, 40_000], [4, 80_000]]) {
      const ms = retryDelayMs(job, attempt, id);
      if (ms < nominal || ms > Math.min(nominal * 1.1, 100_000)) {
        throw new Error(`attempt ${attempt} of run ${id}: ${ms} ms`);
      }
    }
    assertEquals(retryDelayMs(job, 5, id), 100_000, "capped");
  }
  assertEquals(retryDelayMs(job, 1, 7), retryDelayMs(job, 1, 7), "the same for the same run");
});

Deno.test("followCycle names the cycle a link closes, in run order, and nothing else", () => {
  const job = (id: string, after: string | null): Job => ({
    ...buildJob(id, { command: "x", cron: "@daily" }, null, 0),
    after_job: after,
    after_outcome: after === null ? null : "success",
  });
  const all = new Map(
    [job("a", "c"), job("b", "a"), job("c", "b"), job("d", "a")].map((j) => [j.id, j]),
  );
  assertEquals(followCycle(all, all.get("a")!), ["a", "b", "c", "a"]);
  assertEquals(followCycle(all, all.get("d")!), null, "d follows the cycle but closes none");
  assertEquals(followCycle(all, job("e", "missing")), null);
});
