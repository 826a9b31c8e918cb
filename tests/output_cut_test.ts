/**
 * What goes at either side of an output's cut when secrets are masked,
 * as the service stores it and as the API trims a stored output for a
 * read token.
 */
import { assertEquals } from "./assert.ts";
import { cutLine, keptAroundCut, trimmedAroundCuts } from "../src/domain/output_cut.ts";

const encode = (s: string) => new TextEncoder().encode(s);

Deno.test("no secret to mask: the cut keeps all it kept", () => {
  const text = `head${cutLine(10, 18)}tail`;
  assertEquals(trimmedAroundCuts(text, []), text);
  assertEquals(keptAroundCut(encode("head"), encode("tail"), []), { headEnd: 4, tailStart: 0 });
});

Deno.test("every cut line is trimmed around, one a job printed itself too", () => {
  const secret = "0123456789"; // 9 bytes go at either side of each line
  const text = `${"h".repeat(12)}${cutLine(5, 100)}${"m".repeat(30)}${cutLine(50, 100)}${
    "t".repeat(12)
  }`;
  assertEquals(
    trimmedAroundCuts(text, [secret]),
    `hhh${cutLine(23, 100)}${"m".repeat(12)}${cutLine(68, 100)}ttt`,
  );
});

Deno.test("a character is not split where bytes go: the whole of it goes", () => {
  // "é" is 2 bytes: 9 go at either side, and the "é" that would be split there goes whole.
  const { headEnd, tailStart } = keptAroundCut(encode("xéabcdefgh"), encode("abcdefghéx"), [
    "0123456789",
  ]);
  assertEquals([headEnd, tailStart], [1, 10]);
});
