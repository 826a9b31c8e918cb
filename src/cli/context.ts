/**
 * What every command shares: the global options, the loaded config, the
 * store (opened and migrated on first use), and the one place output is
 * written, so `--json` and secret redaction cannot be forgotten.
 */
import type { Command } from "commander";
import { loadConfig, type LoadedConfig } from "../config/config.ts";
import { openStore } from "../store/open.ts";
import type { Store } from "../store/store.ts";
import { resolveTarget } from "../config/database.ts";
import { type DatabaseTarget, secretsOf } from "../store/target.ts";
import { systemTimezone } from "../domain/time.ts";

export interface GlobalOptions {
  config?: string;
  database?: string;
  json?: boolean;
}

/** Secrets seen so far in this process; every line written is scrubbed of them. */
const secrets = new Set<string>();

export function addSecret(secret: string): void {
  if (secret !== "") secrets.add(secret);
}

/** Replace every known secret in `text` with `***`. */
export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.replaceAll(secret, "***");
  return out;
}

export function writeOut(text: string): void {
  console.log(redact(text));
}

export function writeErr(text: string): void {
  console.error(redact(text));
}

/** How a command reaches the context of the whole invocation (its global options). */
export type ContextOf = (cmd: Command) => CommandContext;

export class CommandContext {
  readonly json: boolean;
  #config?: LoadedConfig;
  #target?: DatabaseTarget;

  constructor(private readonly options: GlobalOptions) {
    this.json = options.json === true;
  }

  get config(): LoadedConfig {
    if (!this.#config) {
      // Register the raw password before anything can fail and echo it.
      addSecret(Deno.env.get("JM_DB_PASSWORD") ?? "");
      this.#config = loadConfig({ config: this.options.config, database: this.options.database });
      addSecret(this.#config.settings["db.password"]);
    }
    return this.#config;
  }

  get target(): DatabaseTarget {
    if (!this.#target) {
      this.#target = resolveTarget(this.config.settings);
      secretsOf(this.#target).forEach(addSecret);
    }
    return this.#target;
  }

  /** The zone of jobs that name none: `jobsmanager.timezone`, else this machine's. */
  get defaultZone(): string {
    return this.config.settings["jobsmanager.timezone"] || systemTimezone();
  }

  /** Open the store as it is; the caller migrates and closes it. */
  openStore(): Store {
    return openStore(this.target);
  }

  /** Open the store, bring its schema up to date, run `fn`, close it. */
  async withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    const store = this.openStore();
    try {
      await store.migrate();
      return await fn(store);
    } finally {
      await store.close();
    }
  }

  /** Print `data` as JSON with --json, else the human text. */
  print(human: () => string, data: unknown): void {
    writeOut(this.json ? JSON.stringify(data, null, 2) : human());
  }
}
