/**
 * What goes at either side of an output's cut when secrets are masked,
 * as the service stores it and as the API trims a stored output for a
 * read token.
 */
import { assertEquals } from "./assert.ts";
import {
  cutLine,
  keptAroundCut,
  trimmedAroundCuts,
  trimmedBeforeShortenings,
} from "../src/domain/output_cut.ts";

const encode = (s: string) => new TextEncoder().encode(s);

Deno.test("no secret to mask: the cut keeps all it kept", () => {
  const text = `head${cutLine(10, 18)}tail`;
  assertEquals(trimmedAroundCuts(text, []), text);
  assertEquals(keptAroundCut(encode("head"), encode("tail"), []), { headEnd: 4, tailStart: 0 });
});

Deno.test("the one cut line is trimmed around", () => {
  const secret = "0123456789"; // 9 bytes go at either side of the line
  const text = `${"h".repeat(12)}${cutLine(5, 100)}${"t".repeat(12)}`;
  assertEquals(trimmedAroundCuts(text, [secret]), `hhh${cutLine(23, 100)}ttt`);
});

Deno.test("an output that printed a cut line of its own cannot be trimmed: which is the cut cannot be told", () => {
  // The job's own line, just before the real cut, which split a secret: trimmed around the
  // job's line, the real one kept all of the secret but its first character.
  const secret = "hunter2-SuperSecretValue-XYZ";
  const text = `${"x".repeat(29)}${cutLine(1, 2)}${"m".repeat(10)}${cutLine(300, 400)}${
    secret.slice(1)
  }${"z".repeat(42)}`;
  assertEquals(trimmedAroundCuts(text, [secret]), null);
  // Its start alone, malformed, counts too.
  assertEquals(trimmedAroundCuts(`a [… jobsmanager cut x${cutLine(3, 9)}b`, [secret]), null);
});

Deno.test("a character is not split where bytes go: the whole of it goes", () => {
  // "é" is 2 bytes: 9 go at either side, and the "é" that would be split there goes whole.
  const { headEnd, tailStart } = keptAroundCut(encode("xéabcdefgh"), encode("abcdefghéx"), [
    "0123456789",
  ]);
  assertEquals([headEnd, tailStart], [1, 10]);
});

Deno.test("the characters before a note's shortened command line go, one fewer than the longest secret's", () => {
  const secret = "supersecretvalue-0123456789abcdef"; // 32 characters go before each "…"
  const note = `pids 1 (sh -c sleep 20; : ${"p".repeat(41)} ${secret.slice(0, 20)}…), 2 (sleep 9)`;
  const shown = trimmedBeforeShortenings(note, [secret]);
  assertEquals(shown, `pids 1 (sh -c sleep 20; : ${"p".repeat(30)}…), 2 (sleep 9)`);
  assertEquals(trimmedBeforeShortenings(note, []), note);
});
