/**
 * How the CLI writes its output: the UTF-8 of the text and a newline,
 * whatever the text's length, wherever a character of two UTF-16 units
 * falls, and however few bytes each write takes.
 */
import { writeLine } from "../src/cli/context.ts";
import { assertEquals } from "./assert.ts";

/** A file that takes at most `most` bytes a write, and keeps them. */
function file(most: number): { writeSync(p: Uint8Array): number; bytes(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    writeSync(p) {
      parts.push(p.slice(0, most));
      return Math.min(most, p.length);
    },
    bytes: () => new Uint8Array(parts.flatMap((p) => [...p])),
  };
}

function written(text: string, most = Infinity): Uint8Array {
  const out = file(most);
  writeLine(out, text);
  return out.bytes();
}

Deno.test("writeLine: the text's UTF-8 and a newline, at every length and chunk boundary", () => {
  const chunk = 16_384;
  for (const length of [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk + 7]) {
    for (const wide of ["é", "…", "😀"]) {
      for (const at of [0, chunk - 2, chunk - 1, chunk, 2 * chunk - 1]) {
        if (at > length) continue;
        const text = "x".repeat(at) + wide + "y".repeat(Math.max(0, length - at));
        assertEquals(written(text), new TextEncoder().encode(`${text}\n`), `${length} ${at}`);
      }
    }
  }
});

Deno.test("writeLine: a file taking a few bytes a write gets them all, in order", () => {
  const text = "job 😀 …\n".repeat(5_000);
  assertEquals(written(text, 1_000), new TextEncoder().encode(`${text}\n`));
});

Deno.test("writeLine: a lone surrogate is written as U+FFFD, as console.log writes it", () => {
  assertEquals(written("a\ud800b"), new TextEncoder().encode("a\ufffdb\n"));
});
