/**
 * What every command shares: the global options, the loaded config, the
 * store (opened, its schema checked, or made in a new database), and the
 * one place output is written, so `--json` and secret redaction cannot be
 * forgotten.
 */
import { givenOwner } from "../store/sqlite_owner.ts";
import { loadConfig, type LoadedConfig } from "../config/config.ts";
import { type OpenOptions, openStore } from "../store/open.ts";
import type { NodeStore, Store } from "../store/store.ts";
import { resolveTarget } from "../config/database.ts";
import {
  absoluteDescription,
  type DatabaseTarget,
  describeTarget,
  secretsOf,
} from "../store/target.ts";
import { redactor } from "../domain/secrets.ts";
import { removeIfNoTables } from "../store/sqlite.ts";
import { systemTimezone, systemZone } from "../domain/time.ts";
import type { Node } from "../domain/node.ts";
import { liveServices } from "../app/status.ts";
import { guardUsers, type Liveness, usersGivenCheck } from "../app/older_nodes.ts";
import type { PlanCheck } from "../app/import/plan.ts";
import { type DefaultZone, defaultZone, zoneAmong } from "../app/zone.ts";
import { toJson } from "../domain/json.ts";
import { RuntimeError } from "../errors.ts";

export interface GlobalOptions {
  config?: string;
  database?: string;
  json?: boolean;
}

/** Secrets seen so far in this process; every line written is scrubbed of them. */
const secrets = new Set<string>();
let scrub = redactor(secrets);

export function addSecret(secret: string): void {
  if (secret === "" || secrets.has(secret)) return;
  secrets.add(secret);
  scrub = redactor(secrets);
}

/** `text` with every known secret masked, as `redactor` masks. */
export function redact(text: string): string {
  return scrub(text);
}

/** Characters encoded for one write of {@link writeLine}. */
const CHUNK = 16_384;
/** The bytes of one chunk (at most 3 a character) and the line's newline. */
const chunkBytes = new Uint8Array(CHUNK * 3 + 1);
const encoder = new TextEncoder();

/**
 * Write `text` and a newline to `file` in UTF-8, a chunk at a time through
 * one small buffer: console.log scans its text for format specifiers, then
 * encodes all of it into fresh memory, 50-60 ms for the 1.2 MB table of
 * 10,000 jobs (this takes under 10).
 */
export function writeLine(file: Pick<Deno.FsFile, "writeSync">, text: string): void {
  let start = 0;
  do {
    let end = Math.min(start + CHUNK, text.length);
    // A surrogate pair split between two chunks would be written as two U+FFFD.
    if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--;
    let { written } = encoder.encodeInto(text.slice(start, end), chunkBytes);
    if (end === text.length) chunkBytes[written++] = 0x0a;
    for (let done = 0; done < written;) {
      done += file.writeSync(chunkBytes.subarray(done, written));
    }
    start = end;
  } while (start < text.length);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * Write `text` on stdout; false when its reader has gone away (`| head`).
 * That is not an error, as with console.log, but a command that would go
 * on printing (`logs --follow`) stops then, as `tail -f | head` does.
 */
export function writeOut(text: string): boolean {
  try {
    writeLine(Deno.stdout, redact(text));
    return true;
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    return false;
  }
}

export function writeErr(text: string): void {
  console.error(redact(text));
}

/** Whether a `--database` URL holds a password (`mysql://user:password@…`). */
function passwordIn(url: string | undefined): boolean {
  try {
    return url !== undefined && new URL(url).password !== "";
  } catch {
    return false;
  }
}

/** What a database not made yet lacks, for messages: its file (`it`), or jobsmanager's tables. */
export interface Missing {
  what: string;
  it: "it" | "them";
}

export class CommandContext {
  readonly json: boolean;
  #config?: LoadedConfig;
  #target?: DatabaseTarget;

  constructor(private readonly options: GlobalOptions) {
    this.json = options.json === true;
    if (passwordIn(options.database)) {
      writeErr(
        "jobsmanager: warning: the password given in --database can be read by every user of this machine (ps, /proc); give it in JM_DB_PASSWORD or db.password_file instead",
      );
    }
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

  /**
   * The zone of jobs that name none: `jobsmanager.timezone`, else the one a
   * live service reports, else this machine's.
   */
  async defaultZone(nodes: NodeStore | null): Promise<DefaultZone> {
    return localZoneSaid(
      await defaultZone(nodes, {
        configured: this.config.settings["jobsmanager.timezone"],
        local: systemTimezone(),
        now: Date.now(),
        heartbeatMs: this.config.settings["jobsmanager.heartbeat_interval"] * 1000,
      }),
    );
  }

  /** The same, from the services a command has already read as live. */
  zoneAmong(live: Node[]): DefaultZone {
    return localZoneSaid(
      zoneAmong(live, {
        configured: this.config.settings["jobsmanager.timezone"],
        local: systemTimezone(),
      }),
    );
  }

  /** The database as people should read it: a SQLite path made absolute. */
  get databaseName(): string {
    return absoluteDescription(describeTarget(this.target));
  }

  /** Whether the database exists: false only for a SQLite file not made yet. */
  databaseExists(): boolean {
    const target = this.target;
    if (target.kind !== "sqlite") return true;
    try {
      Deno.statSync(target.path);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Open the store as it is; the caller migrates and closes it. Its writes
   * leave change notices in jobsmanager.notice_dir unless `options` say not.
   */
  openStore(options: OpenOptions = {}): Store {
    return openStore(this.target, {
      notices: this.config.settings["jobsmanager.notice_dir"],
      ...options,
    });
  }

  /**
   * Say so when opening `store` made a new database, or its migration made
   * jobsmanager's tables in one that held none: run from the wrong
   * directory, or with a mistyped path, a command would otherwise write
   * jobs no service ever reads.
   */
  noteCreated(store: Store): void {
    if (!store.created && !store.madeSchema) return;
    const mysql = this.target.kind === "mysql";
    const byDefault = mysql ? "" : this.byDefault();
    const path = mysql ? this.databaseName : this.databaseName.slice("sqlite:".length);
    if (store.madeSchema) {
      // A database that held other tables (the original's, moved aside), none of jobsmanager's.
      writeErr(
        `jobsmanager: created jobsmanager's tables in the database ${path}${byDefault}, which held none; if the service uses another, point this command at it with --database or --config`,
      );
      return;
    }
    if (mysql) {
      writeErr(
        `jobsmanager: created jobsmanager's tables in the empty database ${path}; if the service uses another, point this command at it with --database or --config`,
      );
      return;
    }
    const owner = givenOwner(path);
    writeErr(
      `jobsmanager: created a new, empty database ${path}${byDefault}${
        owner === null
          ? ""
          : `, owned by ${owner} (the owner of its directory), so a service run as ${owner} can open it`
      }; if the service uses another, point this command at it with --database or --config`,
    );
  }

  /** Said of the database when nothing named it. */
  private byDefault(): string {
    const s = this.config.settings;
    return s["db.url"] === "" && s["db.host"] === ""
      ? " (the default: no --database, $JM_DATABASE_URL or config file names one)"
      : "";
  }

  /**
   * Refuse a database that does not exist yet, for a command that reads,
   * or changes what must be there already: a mistyped path would otherwise
   * become a new, empty database, read as "no jobs" (and a file exported
   * from it, applied with --prune, would remove every job). Only commands
   * that can put jobs in a new database (`job add`, `apply`, `import`),
   * `db migrate` and `serve` make one.
   */
  private refuseToCreate({ what, it }: Missing): never {
    throw new RuntimeError(
      `${what}${this.byDefault()}; this command does not create ${
        it === "it" ? "one" : it
      }: check --database, $JM_DATABASE_URL or the config's db.url, or create ${it} with \`jobsmanager db migrate\`, \`jobsmanager serve\` or a command that adds jobs (\`jobsmanager job add\`, \`jobsmanager apply FILE\`)`,
    );
  }

  /** The services live on this database now, by the heartbeat interval configured here. */
  async liveServices(nodes: NodeStore): Promise<Node[]> {
    return await liveServices(nodes, this.liveness());
  }

  /**
   * Open the store, run `fn`, close it. Unless the command `creates` one, a
   * database that does not exist yet (a SQLite file, or jobsmanager's
   * tables) is refused, and nothing is written. No command but `serve` and
   * `db migrate` upgrades an older schema: it is refused, naming both
   * versions, so that no command of a newer release leaves the services
   * of the older one unable to start again.
   */
  async withStore<T>(
    fn: (store: Store) => Promise<T>,
    options: { creates?: boolean } = {},
  ): Promise<T> {
    if (options.creates !== true) {
      return await this.withDatabase((store, missing) =>
        store === null ? this.refuseToCreate(missing!) : fn(this.guarded(store))
      );
    }
    // Creates the schema of a new database, or a table dropped by hand (said); refuses an older one.
    const { store, migrated } = await this.openMigrated((store) =>
      store.migrate({ upgrade: false })
    );
    if (migrated.created.length > 0) {
      const one = migrated.created.length === 1;
      writeErr(
        `jobsmanager: ${store.description}: created the missing table${one ? "" : "s"} ${
          migrated.created.join(", ")
        } again, empty`,
      );
    }
    try {
      return await fn(this.guarded(store));
    } finally {
      await closeSoon(store);
    }
  }

  /** `store`, refusing to give a job a user while a service of an older release is live. */
  private guarded(store: Store): Store {
    return guardUsers(store, () => this.liveness());
  }

  /**
   * What a plan (a dry run) checks of the write it stands for, as
   * `guarded` checks the write: `undone` says that nothing was written.
   */
  planCheck(store: Store, undone: string): PlanCheck {
    return usersGivenCheck(store, () => this.liveness(), undone);
  }

  /** How this command judges a service live: now, by the heartbeat interval configured here. */
  liveness(): Liveness {
    return {
      now: Date.now(),
      heartbeatMs: this.config.settings["jobsmanager.heartbeat_interval"] * 1000,
    };
  }

  /**
   * Run `fn` on the store when the database exists, at this build's schema
   * version (an older or newer one is refused); else on null, with what it
   * lacks. Writes nothing but what `fn` writes: not the tables of a new
   * database (a dry run plans against no jobs at all), nor an upgrade.
   */
  async withDatabase<T>(
    fn: (store: Store | null, missing: Missing | null) => Promise<T>,
  ): Promise<T> {
    if (!this.databaseExists()) {
      return await fn(null, {
        what: `no database at ${this.databaseName.slice("sqlite:".length)}`,
        it: "it",
      });
    }
    const store = this.openStore();
    try {
      if (!(await store.hasSchema())) {
        return await fn(null, {
          what: `${this.databaseName} holds no jobsmanager tables`,
          it: "them",
        });
      }
      return await fn(store, null);
    } finally {
      await closeSoon(store);
    }
  }

  /**
   * Open the store and write its schema with `migrate`; the caller closes
   * it. A new database is said to be created only once its schema is
   * written. When the schema cannot be written (a full disk), the store is
   * closed, and a SQLite file this opening created is removed again while
   * it holds no table: left behind, the next attempt would take the file
   * for a database it did not create. The error goes on as it was.
   */
  async openMigrated<T>(
    migrate: (store: Store) => Promise<T>,
  ): Promise<{ store: Store; migrated: T }> {
    const store = this.openStore();
    try {
      const migrated = await migrate(store);
      this.noteCreated(store);
      return { store, migrated };
    } catch (error) {
      // The error to report is the one that stopped the schema, not a second.
      await closeSoon(store).catch(() => undefined);
      const target = this.target;
      if (store.created && target.kind === "sqlite") removeIfNoTables(target.path);
      throw error;
    }
  }

  /** Print `data` as JSON with --json (times in ISO 8601), else the human text. */
  print(human: () => string, data: unknown): void {
    writeOut(this.json ? toJson(data, 2) : human());
  }
}

/**
 * How wide a table may be: the terminal's width when stdout is one, else
 * $COLUMNS when set, else null: piped output is never cut.
 */
export function outputWidth(): number | null {
  const terminal = Deno.stdout.isTerminal() ? Deno.consoleSize().columns : null;
  return tableWidth(terminal, Deno.env.get("COLUMNS"));
}

/**
 * The width of `outputWidth`, from the terminal's columns (null: stdout is
 * none) and $COLUMNS. A terminal of 0 columns is one given no size (a
 * pseudo-terminal of `script`, `docker exec -t`, some CI runners), not one
 * nothing fits in: its width is unknown, as a pipe's.
 */
export function tableWidth(terminal: number | null, columnsVariable?: string): number | null {
  if (terminal !== null && terminal > 0) return terminal;
  const columns = Number(columnsVariable);
  return Number.isInteger(columns) && columns > 0 ? columns : null;
}

let zoneProblemSaid = false;

/** `zone`, having said on stderr (once) what of TZ this machine's zone could not be read from. */
function localZoneSaid(zone: DefaultZone): DefaultZone {
  const { problem } = systemZone();
  if (zone.source === "local" && problem !== null && !zoneProblemSaid) {
    zoneProblemSaid = true;
    writeErr(`jobsmanager: warning: ${problem}`);
  }
  return zone;
}

/**
 * How long a command waits for its store to close once its work is done
 * (or given up): a database that stopped answering would hold the exit
 * until a statement's timeout, 30 s, past a `--timeout` the user gave.
 * What is left then is cut by the exit; every write was awaited before.
 */
const CLOSE_WAIT_MS = 2000;

async function closeSoon(store: Store): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waited = new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS));
  try {
    await Promise.race([store.close(), waited]);
  } finally {
    clearTimeout(timer);
  }
}
