/** The Job model's comparisons, and the text it refuses. */
import { assertEquals, assertThrows } from "./assert.ts";
import { buildJob, sameDefinition, validateJob } from "../src/domain/job.ts";
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
    { env: { A: "1" } },
    { env: { A: "1", B: "3" } },
    { env: { A: "1", B: "2", C: "" } },
  ];
  for (const change of changes) {
    assertEquals(sameDefinition(a, { ...a, ...change }), false, JSON.stringify(change));
  }
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
