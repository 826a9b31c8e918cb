/** The Job model's comparisons. */
import { assertEquals } from "./assert.ts";
import { buildJob, sameDefinition } from "../src/domain/job.ts";

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
