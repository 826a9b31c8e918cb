/**
 * Bearer tokens: loaded from the config (values or files), compared by
 * digest, never echoed. Each request gets a role; `read` may look, `admin`
 * may also change. Without any token the server is loopback only and every
 * caller is admin.
 */
import { createHash } from "node:crypto";
import { checkToken, type Settings, type TokenRole } from "../config/config.ts";
import { ValidationError } from "../errors.ts";

export type Role = TokenRole;

/** Where a token was configured, as a client refused is told where to take one from. */
const TOKEN_SOURCES = ["http.tokens", "a token_file of http.tokens", "JM_HTTP_TOKEN"] as const;
export type TokenSource = typeof TOKEN_SOURCES[number];

/** A token of the settings, its role, and where it was given. */
export interface LoadedToken {
  token: string;
  role: Role;
  from: TokenSource;
}

/** Who may do what; built once at startup. */
export class Tokens {
  readonly #roles = new Map<string, Role>();
  readonly #sources: TokenSource[];

  constructor(tokens: LoadedToken[]) {
    for (const { token, role } of tokens) {
      // A token listed twice keeps its higher role.
      if (this.#roles.get(digest(token)) !== "admin") this.#roles.set(digest(token), role);
    }
    this.#sources = TOKEN_SOURCES.filter((from) => tokens.some((t) => t.from === from));
  }

  /** Where to take a token from, as "a token from …" ends: "JM_HTTP_TOKEN", "http.tokens or JM_HTTP_TOKEN". */
  get sources(): string {
    const all = this.#sources;
    return all.length < 2 ? all.join("") : `${all.slice(0, -1).join(", ")} or ${all.at(-1)}`;
  }

  /**
   * What a wrong token is not, as "the bearer token is not …" ends: "the
   * one from JM_HTTP_TOKEN", "one of the tokens from http.tokens or
   * JM_HTTP_TOKEN". Settings only, never a file's path: anyone may be told.
   */
  get whence(): string {
    return this.#roles.size === 1
      ? `the one from ${this.sources}`
      : `one of the tokens from ${this.sources}`;
  }

  /** Any token configured at all: without one, the server is open on loopback. */
  get configured(): boolean {
    return this.#roles.size > 0;
  }

  /** The role of a presented token, or null for an unknown one. */
  roleOf(token: string): Role | null {
    return this.#roles.get(digest(token)) ?? null;
  }
}

/** Looking the digest up, not the token, keeps the comparison's timing from telling the token. */
function digest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Every token of the settings, files read now; the values, for redaction and lookup. */
export async function loadTokens(settings: Settings): Promise<LoadedToken[]> {
  const out: LoadedToken[] = [];
  for (const [i, spec] of settings["http.tokens"].entries()) {
    if (spec.token !== undefined) {
      out.push({ token: spec.token, role: spec.role, from: "http.tokens" });
      continue;
    }
    const where = `http.tokens[${i}].token_file`;
    let text: string;
    try {
      text = await Deno.readTextFile(spec.token_file!);
    } catch (error) {
      throw new ValidationError(
        "http.tokens",
        `${where}: ${spec.token_file} cannot be read: ${(error as Error).message}`,
      );
    }
    const token = text.split("\n")[0].trim();
    out.push({
      token: checkToken(token, `${where} (${spec.token_file})`, "http.tokens"),
      role: spec.role,
      from: "a token_file of http.tokens",
    });
  }
  // http.token in a config file too, but its variable is how people give it (README).
  if (settings["http.token"] !== "") {
    out.push({ token: settings["http.token"], role: "admin", from: "JM_HTTP_TOKEN" });
  }
  return out;
}

/** The bearer token of an Authorization header, or null. */
export function bearerOf(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match ? match[1] : null;
}
