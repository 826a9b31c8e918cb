/**
 * Jobs as a file a team reviews: `export` writes every job (JSON5 or YAML),
 * one entry each with only the fields that differ from a new job's
 * defaults, in id order and column order so it diffs well; `apply` makes
 * the database match a file, all of it or nothing.
 *
 * An entry's keys are the job's columns, read as `job add` reads its
 * options: the six schedule fields follow CronTrigger's default rule, or
 * `cron` gives a crontab expression instead.
 */
import JSON5 from "json5";
import type { ValueNode } from "@humanwhocodes/momoa";
import { type Json5Document, Json5Error, keyOf, parseJson5 } from "../config/json5.ts";
import { Document, isMap, isSeq, LineCounter, parse, parseDocument, visit } from "yaml";
import { CONTROL, printable, shortened } from "../domain/printable.ts";
import { RuntimeError, UsageError, ValidationError } from "../errors.ts";
import {
  buildJob,
  DEFAULT_RETRY_DELAY,
  DEFAULT_RETRY_MAX_DELAY,
  DEFAULT_RETRY_ON,
  DEFAULT_TIMEOUT,
  envProblem,
  followCycle,
  hasSchedule,
  type Job,
  JOB_FIELDS,
  type JobOptions,
  validateJob,
} from "../domain/job.ts";
import { NOTIFY_FIELDS } from "../domain/notify.ts";
import { fieldOptions } from "./job_fields.ts";
import { AS_FIELDS, jobFieldOf } from "../domain/option_names.ts";
import { retryOnUnused } from "./jobs.ts";
import { idWord } from "../domain/shell.ts";
import { FIELD_NAMES } from "../cron/grammar.ts";
import type { JobStore } from "../store/store.ts";
import {
  applyPlan,
  type Candidate,
  type Outcome,
  type PlanCheck,
  type PlanEntry,
  previewPlan,
  wholeDatabase,
} from "./import/plan.ts";
import type { FileFormat } from "./file_format.ts";

const HEADER = "jobsmanager jobs; `jobsmanager apply FILE` makes the database match this file";

/** The columns an entry may set, in the order export writes them. */
const ENTRY_KEYS: readonly string[] = [
  "id",
  "command",
  "cron",
  ...JOB_FIELDS.filter((f) => !["id", "command", "created_at", "updated_at"].includes(f)),
];

/** YAML for `.yaml`/`.yml`, JSON5 for anything else. */
export function formatOfPath(path: string): FileFormat {
  return /\.ya?ml$/i.test(path) ? "yaml" : "json5";
}

/** One job as a file entry: identity and schedule always, the rest where not the default. */
function entryOf(job: Job): Record<string, unknown> {
  const entry: Record<string, unknown> = { id: job.id, command: job.command };
  // A job without a schedule of its own is known by the job it follows.
  if (hasSchedule(job)) { for (const field of FIELD_NAMES) entry[field] = job[field]; }
  const optional: [keyof Job, unknown][] = [
    ["timezone", null],
    ["timeout", DEFAULT_TIMEOUT],
    ["enabled", true],
    ["max_instances", null],
    ["coalesce", null],
    ["misfire_grace_time", null],
    ["cwd", null],
    ["description", null],
    ["retries", 0],
    ["retry_delay", DEFAULT_RETRY_DELAY],
    ["retry_max_delay", DEFAULT_RETRY_MAX_DELAY],
    ["retry_on", DEFAULT_RETRY_ON],
    ["retry_overlap", false],
    ["after_job", null],
    ["after_outcome", null],
    // Notifications (issue 13).
    ...NOTIFY_FIELDS.map((f): [keyof Job, unknown] => [f, null]),
    ["user", null],
  ];
  for (const [key, fallback] of optional) {
    if (job[key] !== fallback) entry[key] = job[key];
  }
  if (Object.keys(job.env).length > 0) {
    entry.env = Object.fromEntries(Object.entries(job.env).sort(([a], [b]) => a < b ? -1 : 1));
  }
  return Object.fromEntries(ENTRY_KEYS.filter((k) => k in entry).map((k) => [k, entry[k]]));
}

/** The file's content as data (`export --json`, itself a valid JSON5 file). */
export function exportData(jobs: Job[]): { jobs: Record<string, unknown>[] } {
  return { jobs: jobs.map(entryOf) };
}

/** Every job `exportJobs` may write, and what the operator should know of the file. */
export interface Exportable {
  /** Every job, in id order. */
  jobs: Job[];
  /**
   * Followers of a job no longer there (`job remove` leaves them idle):
   * the file applies to this database, which keeps the link, but `apply`
   * refuses it where that job does not exist. One line each, with the fix.
   */
  warnings: string[];
}

/**
 * The jobs to export, once none would make `apply` of the file refuse it
 * all: a row broken by hand in SQL (validateJob's faults) is refused here,
 * naming each job, what is wrong and how to fix it, and nothing is written,
 * so that no file is kept as a backup that cannot be restored.
 */
export async function jobsToExport(store: JobStore, now: number): Promise<Exportable> {
  const jobs = await store.listJobs();
  const all = new Map(jobs.map((j) => [j.id, j]));
  const invalid: string[] = [];
  for (const job of jobs) {
    try {
      validateJob(job);
      // Its entry as apply builds it on a database without it: a row kept before a rule
      // (a command longer than MySQL holds, which SQLite kept) would be refused there.
      buildJob(job.id, optionsOf(entryOf(job)), null, now);
      const cycle = followCycle(all, job);
      if (cycle !== null) {
        throw new ValidationError(
          "after",
          `after: following '${job.after_job}' closes a cycle: ${
            cycle.join(" → ")
          } (written in SQL: no command makes one); drop one link (\`jobsmanager job update --after '' ${
            idWord(job.id)
          }\`)`,
        );
      }
    } catch (error) {
      invalid.push(`job '${job.id}': ${(error as Error).message}`);
    }
  }
  if (invalid.length > 0) {
    throw new RuntimeError(
      `\`apply\` would refuse ${invalid.length} job${
        invalid.length === 1 ? "" : "s"
      } as stored, and so the whole file; nothing written. Fix each (\`jobsmanager job update … ID\`, or the row in SQL), or remove it (\`jobsmanager job remove ID\`), then export again:\n${
        invalid.join("\n")
      }`,
    );
  }
  const ids = new Set(jobs.map((j) => j.id));
  const warnings = jobs.filter((j) => j.after_job !== null && !ids.has(j.after_job)).map((j) =>
    `job '${j.id}' follows '${j.after_job}', which no longer exists: the file applies here, but \`apply\` refuses it on a database without '${j.after_job}'; give '${j.id}' a job to follow (\`jobsmanager job update --after JOB ${
      idWord(j.id)
    }\`) or a schedule of its own (\`--after '' --cron …\`), or remove it`
  );
  return { jobs, warnings };
}

/**
 * Every job (ordered by id, as the store lists them) as a file. Control
 * characters and bidirectional marks are written as escapes, never raw
 * (JSON5 and YAML's libraries escape C0 only): a file shown in a terminal
 * or a review cannot recolour it or reverse a line (see printable.ts).
 */
export function exportJobs(jobs: Job[], format: FileFormat): string {
  const data = exportData(jobs);
  if (format === "json5") {
    return `// ${HEADER}\n${escapeControls(JSON5.stringify(data, null, 2))}\n`;
  }
  const doc = new Document(data);
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value !== "string") return;
      // Only a double-quoted YAML string reads escapes.
      if (
        CONTROL.test(node.value) || YAML_11_BREAKS.test(node.value) ||
        readOtherwiseByYaml11(node.value)
      ) {
        node.type = "QUOTE_DOUBLE";
      }
    },
  });
  return `# ${HEADER}\n${
    escapeControls(doc.toString({ lineWidth: 0 })).replace(
      /[\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16)}`,
    )
  }`;
}

/**
 * What PyYAML (YAML 1.1) reads otherwise than YAML 1.2 in any unquoted
 * value, so the export quotes it: a tab (a plain value with one is a
 * ScannerError) and U+2028/U+2029, line breaks to YAML 1.1 that a block
 * value would fold or keep as newlines (escaped then, in quotes only).
 */
const YAML_11_BREAKS = /[\t\u2028\u2029]/;

/**
 * Whether a YAML 1.1 reader (PyYAML, so Ansible; Go's yaml.v2) takes plain
 * `text` for something else than that string: `no` and `off` for false,
 * `12:30` for 750, `1_000` for 1000, a date for a timestamp. YAML 1.2, which
 * jobsmanager writes and reads, quotes only its own such strings, so an
 * environment value `no` reached those tools as false. Asked only of text
 * that could be one (parsing is dear on 10,000 jobs).
 */
function readOtherwiseByYaml11(text: string): boolean {
  // `=` alone is YAML 1.1's value key, which PyYAML refuses to read at all; `<<` its merge key,
  // which it refuses as a value.
  if (text === "=" || text === "<<") return true;
  if (!/^([-+.]?[0-9]|[yYnNoO][a-zA-Z]{0,2}$)/.test(text)) return false;
  try {
    return typeof parse(text, { version: "1.1" }) !== "string";
  } catch {
    return true;
  }
}

/** Control characters left raw in a JSON5 or YAML document, as `\uNNNN` (they are only in its quoted strings). */
function escapeControls(text: string): string {
  return text.replace(
    new RegExp(CONTROL.source, "g"),
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Where an entry and its keys are in the file, for messages. */
interface Locator {
  entryLine(index: number): number;
  fieldLine(index: number, field: string): number;
}

/**
 * What YAML reads as syntax in a plain value (`*` an alias, `: ` a
 * mapping), said where its errors come from one: most often an unquoted
 * cron line or command.
 */
const QUOTE_HINT = `quote a value holding * & ! % @ \` or ": " (e.g. cron: "*/5 * * * *")`;
const UNQUOTED = /alias|Nested mappings/;

function parseYaml(path: string, text: string): { data: unknown; at: Locator } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const error = doc.errors[0];
    const at = error.linePos?.[0].line ?? 1;
    const message = error.code === "MULTIPLE_DOCS"
      ? "a second YAML document (after ---): a jobs file is one document, with one jobs list"
      : error.message.split("\n")[0].replace(/:$/, "") +
        (UNQUOTED.test(error.message) ? `; ${QUOTE_HINT}` : "");
    throw new UsageError(`${path}:${at}: ${message}`);
  }
  // yaml reads a value under a tag it does not know (Ansible's !vault) as if it had none, and
  // only warns: the job would get the ciphertext as its value.
  const tag = doc.warnings.find((w) => w.code === "TAG_RESOLVE_FAILED");
  if (tag !== undefined) {
    const name = /Unresolved tag: (\S+)/.exec(tag.message)?.[1] ?? "?";
    throw new UsageError(
      `${path}:${tag.linePos?.[0].line ?? 1}: the tag ${
        shortened(printable(name))
      } is not one a jobs file knows (only YAML's own, such as !!str): the value under it would be taken as written; give the value itself (an Ansible !vault decrypted, e.g. by a template)`,
    );
  }
  const line = (offset: number | undefined) =>
    offset === undefined ? 1 : lines.linePos(offset).line;
  // `.inf` and `.nan` are numbers to YAML, and would reach a field as null (JSON has neither).
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value !== "number" || Number.isFinite(node.value)) return;
      const written = node.range ? text.slice(node.range[0], node.range[1]) : String(node.value);
      throw new UsageError(
        `${path}:${line(node.range?.[0])}: ${
          shortened(printable(written))
        } is ${node.value} to YAML, which no job field takes; quote it if it is text`,
      );
    },
  });
  const item = (index: number) => {
    const seq = doc.get("jobs", true);
    return isSeq(seq) ? seq.items[index] : undefined;
  };
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (error) {
    const message = (error as Error).message;
    if (message.startsWith("Unresolved alias")) {
      // `minute: */5` unquoted: an alias of no anchor, on the first line with a value starting with *.
      const at = text.split("\n").findIndex((l) => /:\s+\*/.test(l)) + 1;
      throw new UsageError(`${path}:${Math.max(at, 1)}: ${message}; ${QUOTE_HINT}`);
    }
    // yaml refuses aliases that would expand beyond reason (a "billion laughs" file).
    throw new UsageError(`${path}:1: ${message}; expand the aliases by hand`);
  }
  return {
    data,
    at: {
      entryLine: (index) => line((item(index) as { range?: number[] })?.range?.[0]),
      fieldLine: (index, field) => {
        const entry = item(index);
        const pair = isMap(entry)
          ? entry.items.find((p) => (p.key as { value?: unknown })?.value === field)
          : undefined;
        const node = (pair?.key ?? entry) as { range?: number[] } | undefined;
        return line(node?.range?.[0]);
      },
    },
  };
}

/** Said when JSON5 cannot read a file that reads as YAML (stdin has no name to tell). */
const YAML_HINT =
  "it looks like YAML: give --format yaml (a file named .yaml or .yml is read as YAML)";

/** A first line a YAML jobs file has and JSON5 cannot: a `#` comment, `---`, or `jobs:` bare. */
function looksLikeYaml(text: string): boolean {
  const first = text.split("\n").find((line) => line.trim() !== "") ?? "";
  return /^\s*(#|---|jobs\s*:)/.test(first);
}

function parseJson5File(path: string, text: string): { data: unknown; at: Locator } {
  let doc: Json5Document;
  try {
    doc = parseJson5(text);
  } catch (error) {
    if (!(error instanceof Json5Error)) throw error;
    throw new UsageError(
      `${path}:${error.line}: ${error.message}${looksLikeYaml(text) ? `; ${YAML_HINT}` : ""}`,
    );
  }
  const member = (node: ValueNode | undefined, key: string) =>
    node?.type === "Object" ? node.members.find((m) => keyOf(m) === key) : undefined;
  const jobs = member(doc.root, "jobs")?.value;
  const item = (index: number) => jobs?.type === "Array" ? jobs.elements[index]?.value : undefined;
  return {
    data: doc.value,
    at: {
      entryLine: (index) => item(index)?.loc.start.line ?? 1,
      fieldLine: (index, field) => {
        const entry = item(index);
        return (member(entry, field) ?? entry)?.loc.start.line ?? 1;
      },
    },
  };
}

/** A file entry as `job add` options, its fields read as an API body's; ValidationError names the key at fault. */
function optionsOf(entry: Record<string, unknown>): JobOptions {
  const unknown = Object.keys(entry).find((k) => !ENTRY_KEYS.includes(k));
  if (unknown !== undefined) {
    throw new ValidationError(
      unknown,
      `${unknown}: not a job field (allowed: ${ENTRY_KEYS.join(", ")})`,
    );
  }
  const env = entry.env;
  const envFault = env === undefined ? null : envProblem(env);
  if (envFault !== null) throw new ValidationError("env", envFault);
  return {
    ...fieldOptions(entry),
    env: env === undefined
      ? undefined
      : Object.entries(env as Record<string, string>).map(([k, v]) => `${k}=${v}`),
  };
}

/**
 * Every entry of a jobs file as a job. All entries are checked; when any
 * is wrong, a ValidationError lists each as `FILE:LINE: job 'ID': field: why`,
 * its field the first one's (as `job add` names the field it refuses).
 */
export function candidatesFromFile(
  path: string,
  text: string,
  now: number,
  format = formatOfPath(path),
): Candidate[] {
  const { data, at } = format === "yaml" ? parseYaml(path, text) : parseJson5File(path, text);
  const top = data as { jobs?: unknown } | null;
  const extra = top !== null && typeof top === "object" && !Array.isArray(top)
    ? Object.keys(top).filter((k) => k !== "jobs")
    : [];
  if (top === null || typeof top !== "object" || !Array.isArray(top.jobs) || extra.length > 0) {
    throw new UsageError(
      `${path}:1: expected an object with one key, jobs, holding a list of jobs${
        extra.length > 0 ? ` (found ${extra.join(", ")})` : ""
      }`,
    );
  }
  const errors: string[] = [];
  /** The field of each error, where it is about one. */
  const fields: string[] = [];
  const candidates: Candidate[] = [];
  const seen = new Map<string, number>();
  (top.jobs as unknown[]).forEach((entry, index) => {
    const id = (entry as { id?: unknown } | null)?.id;
    const where = (line: number) =>
      `${path}:${line}: job ${typeof id === "string" ? `'${id}'` : `#${index + 1}`}`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      errors.push(`${where(at.entryLine(index))}: not an object of job fields`);
      return;
    }
    if (typeof id !== "string") {
      fields.push("id");
      errors.push(
        `${where(at.entryLine(index))}: id: ${
          id === undefined
            ? "missing (every job needs an id)"
            : `${JSON.stringify(id)} is not a string (an id is text: quote it)`
        }`,
      );
      return;
    }
    const line = at.entryLine(index);
    if (seen.has(id)) {
      fields.push("id");
      errors.push(
        `${where(line)}: id: '${id}' is already the id of the job on line ${seen.get(id)}`,
      );
      return;
    }
    seen.set(id, line);
    try {
      const job = buildJob(id, optionsOf(entry as Record<string, unknown>), null, now);
      candidates.push({
        source: `line ${line}`,
        // Its links are what the plan may refuse.
        at: `${path}:${at.fieldLine(index, "after_job")}`,
        id,
        job,
        notes: [],
        problem: null,
        warnings: [
          retryOnUnused("retry_on" in (entry as object), job, AS_FIELDS),
        ].filter((w) => w !== null),
      });
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      fields.push(jobFieldOf(error.field));
      errors.push(`${where(at.fieldLine(index, jobFieldOf(error.field)))}: ${error.message}`);
    }
  });
  if (errors.length > 0) {
    const message = `${path} has ${errors.length} invalid job${
      errors.length === 1 ? "" : "s"
    }; nothing written:\n${errors.join("\n")}`;
    // An entry that is no object is about no field.
    throw fields.length > 0 ? new ValidationError(fields[0], message) : new UsageError(message);
  }
  return candidates;
}

/**
 * What to tell of the jobs a plan's write stores (the new and the
 * differing ones), as `job add` tells of the job it stores; none of a job
 * left as stored, which was told of when it was written.
 */
export function writtenWarnings(candidates: Candidate[], entries: PlanEntry[]): string[] {
  const written = new Set(
    entries.filter((e) => e.status === "new" || e.status === "differs").map((e) => e.id),
  );
  return candidates.filter((c) => written.has(c.id)).flatMap((c) => c.warnings ?? []);
}

/** A database not made yet, to a plan: no job at all (a plan reads nothing else). */
const NO_JOBS = { listJobs: () => Promise.resolve([]) } as Pick<JobStore, "listJobs">;

/**
 * Make the database match the file (`dryRun`: only the plan); `prune`
 * removes the rest. A dry run on a database not made yet (`store` null)
 * plans against no jobs, and makes nothing.
 */
export function applyJobsFile(
  store: JobStore | null,
  candidates: Candidate[],
  options: { prune: boolean; dryRun: boolean },
  /** What the dry run checks as the write would (the older release guard). */
  check?: PlanCheck,
): Promise<Outcome> {
  const scope = wholeDatabase(options.prune);
  if (options.dryRun) {
    return previewPlan((store ?? NO_JOBS) as JobStore, candidates, scope, check);
  }
  if (store === null) throw new Error("applyJobsFile: only a dry run is given no store");
  return applyPlan(store, candidates, scope);
}
