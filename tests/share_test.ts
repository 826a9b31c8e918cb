/** Which node fires which job (domain/share.ts): the same everywhere, and fair. */
import { assert, assertEquals } from "./assert.ts";
import {
  assignJobs,
  basisDifference,
  jobsDigest,
  readShareBasis,
  sameBasis,
  shareBasis,
} from "../src/domain/share.ts";

const jobs = (n: number) => Array.from({ length: n }, (_, i) => `job-${i}`);

Deno.test("share: 50 jobs on 3 nodes: each node gets 16 or 17", () => {
  const owners = assignJobs(jobs(50), ["web1", "web2", "web3"]);
  const counts = ["web1", "web2", "web3"].map((n) =>
    [...owners.values()].filter((o) => o === n).length
  );
  assertEquals(counts.reduce((a, b) => a + b), 50);
  for (const c of counts) assert(c === 16 || c === 17, `shares ${counts}`);
});

Deno.test("share: every node computes the same, whatever order it lists ids in", () => {
  const a = assignJobs(jobs(200), ["c", "a", "b"]);
  const b = assignJobs(jobs(200).reverse(), ["b", "c", "a"]);
  assertEquals([...a].sort(), [...b].sort());
});

Deno.test("share: one node owns everything; no node owns nothing", () => {
  assertEquals(new Set(assignJobs(jobs(20), ["only"]).values()), new Set(["only"]));
  assertEquals(assignJobs(jobs(20), []).size, 0);
});

Deno.test("share: a node leaving moves its jobs and few others", () => {
  const before = assignJobs(jobs(300), ["a", "b", "c"]);
  const after = assignJobs(jobs(300), ["a", "b"]);
  const moved = [...before].filter(([job, owner]) => owner !== "c" && after.get(job) !== owner);
  // Bounded loads may move a few more than the leaver's, never a reshuffle.
  assert(moved.length < 30, `${moved.length} jobs of the remaining nodes moved`);
  for (const owner of after.values()) assert(owner === "a" || owner === "b");
});

Deno.test("share basis: the same ids in any order give the same basis; one id more or another gives another", () => {
  const ids = Array.from({ length: 100 }, (_, i) => `job-${i}`);
  const basis = (jobIds: string[], nodes = ["b", "a"]) =>
    shareBasis({ count: jobIds.length, digest: jobsDigest(jobIds), marker: 7 }, nodes);
  const mine = basis(ids);
  assertEquals(mine.over, ["a", "b"]);
  assert(sameBasis(basis([...ids].reverse(), ["a", "b"]), mine), "order aside");
  assert(!sameBasis(basis([...ids, "job-100"]), mine), "one more");
  const swapped = [...ids.slice(1), "job-x"];
  assert(!sameBasis(basis(swapped), mine), "as many, another id");
  assert(!sameBasis(basis(ids, ["a"]), mine), "over other nodes");
  assertEquals(
    basisDifference(basis(swapped), mine),
    "it shares 100 jobs over a, b, this node 100 jobs over a, b (as many jobs, not the same ids)",
  );
  assertEquals(
    basisDifference({ ...basis(ids.slice(1), ["a"]), v: 2 }, mine),
    "it shares 99 jobs over a, this node 100 jobs over a, b (another sharing rule: version 2, this node's 1)",
  );
  // As a heartbeat writes it and reads it back; a row without one, or a broken one, has none.
  assertEquals(readShareBasis(JSON.stringify(mine)), mine);
  assertEquals(mine.marker, 7);
  // Read at another marker, the same jobs over the same nodes are the same basis.
  assert(sameBasis({ ...mine, marker: 8 }, mine), "markers aside");
  assertEquals([readShareBasis(null), readShareBasis("{"), readShareBasis('{"v":1}')], [
    null,
    null,
    null,
  ]);
});
