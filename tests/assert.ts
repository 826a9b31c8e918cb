/**
 * Assertions for the tests, on node:assert (built into Deno), since JSR's
 * @std/assert cannot be fetched here. Same names and argument order as
 * @std/assert, so the tests read the usual way.
 */
import nodeAssert from "node:assert/strict";

export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message);
}

export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  nodeAssert.ok(
    actual.includes(expected),
    message ?? `expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
  );
}

export function assertMatch(actual: string, expected: RegExp, message?: string): void {
  nodeAssert.match(actual, expected, message);
}

export function assertThrows(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  errorClass?: new (...args: any[]) => Error,
  messageIncludes?: string,
): Error {
  try {
    fn();
  } catch (error) {
    checkError(error, errorClass, messageIncludes);
    return error as Error;
  }
  throw new nodeAssert.AssertionError({ message: "expected the function to throw" });
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  errorClass?: new (...args: any[]) => Error,
  messageIncludes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    checkError(error, errorClass, messageIncludes);
    return error as Error;
  }
  throw new nodeAssert.AssertionError({ message: "expected the promise to reject" });
}

// deno-lint-ignore no-explicit-any
function checkError(error: unknown, errorClass?: new (...args: any[]) => Error, includes?: string) {
  if (errorClass) {
    nodeAssert.ok(error instanceof errorClass, `expected ${errorClass.name}, got ${String(error)}`);
  }
  if (includes !== undefined) {
    assertStringIncludes((error as Error).message, includes);
  }
}
