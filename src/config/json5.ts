/**
 * JSON5 text as data, read by a parser that keeps where each value is
 * (momoa): a key given twice in one object is refused, naming both lines,
 * where JSON5.parse keeps the last one silently (a `jobs` key given twice
 * in a jobs file once made `apply --prune` remove every job it listed).
 */
import {
  type DocumentNode,
  evaluate,
  type MemberNode,
  parse,
  type ValueNode,
} from "@humanwhocodes/momoa";

/** Text that is not valid JSON5 (`syntax`), or that gives a key twice; and the line at fault. */
export class Json5Error extends Error {
  constructor(message: string, readonly line: number, readonly syntax: boolean) {
    super(message);
  }
}

export interface Json5Document {
  value: unknown;
  /** The document's top value, with positions (`loc.start.line`). */
  root: ValueNode;
}

export function parseJson5(text: string): Json5Document {
  let doc: DocumentNode;
  try {
    doc = parse(text, { mode: "json5" });
  } catch (error) {
    throw syntaxError(text, error as ParseError);
  }
  refuseRepeatedKeys(doc.body);
  return { value: evaluate(doc), root: doc.body };
}

interface ParseError extends Error {
  line: number;
  column: number;
}

/**
 * Where and what: momoa names tokens ("Unexpected token RBrace found."),
 * and blames the last token when the text ends too soon.
 */
function syntaxError(text: string, error: ParseError): Json5Error {
  const lines = text.split("\n");
  let atEnd = /end of input/i.test(error.message);
  if (!atEnd) {
    // Text cut short fails again past its end when more is added; a wrong token fails where it is.
    try {
      parse(`${text}\n@`, { mode: "json5" });
    } catch (again) {
      atEnd = (again as ParseError).line > lines.length;
    }
  }
  if (atEnd) {
    const line = lines.length;
    return new Json5Error(
      `JSON5: unexpected end of input at ${line}:${lines[line - 1].length + 1}`,
      line,
      true,
    );
  }
  const found = lines[error.line - 1]?.[error.column - 1] ?? "";
  return new Json5Error(
    `JSON5: unexpected character ${JSON.stringify(found)} at ${error.line}:${error.column}`,
    error.line,
    true,
  );
}

/** A member's key as written, quoted or not. */
export function keyOf(member: MemberNode): string {
  return member.name.type === "String" ? member.name.value : member.name.name;
}

function refuseRepeatedKeys(node: ValueNode): void {
  if (node.type === "Array") {
    for (const element of node.elements) refuseRepeatedKeys(element.value);
    return;
  }
  if (node.type !== "Object") return;
  const lines = new Map<string, number>();
  for (const member of node.members) {
    const key = keyOf(member);
    const first = lines.get(key);
    const line = member.loc.start.line;
    if (first !== undefined) {
      throw new Json5Error(
        `key '${key}' is given twice in one object (first on line ${first}); keep one`,
        line,
        false,
      );
    }
    lines.set(key, line);
    refuseRepeatedKeys(member.value);
  }
}
