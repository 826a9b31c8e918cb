/**
 * Crontab files as jobs: user crontabs (`m h dom mon dow command`) and
 * system ones (`/etc/crontab`, `/etc/cron.d/*`, a user column before the
 * command), read the way Vixie cron (Debian's cron) reads them.
 *
 * Every line keeps its meaning or is listed with why it cannot: a line that
 * ORs day-of-month and day-of-week becomes two jobs, `%` becomes the
 * standard input it was, `SHELL` other than /bin/sh wraps the command.
 */
import { UsageError, ValidationError } from "../../errors.ts";
import {
  buildJob,
  type Job,
  type JobOptions,
  MAX_DESCRIPTION,
  RUN_POLICY_FIELDS,
  validateId,
  validateUserName,
} from "../../domain/job.ts";
import { parseTerm, runList, splitList, SYNTAX, termValues } from "../../cron/grammar.ts";
import { scheduleFromCrontab } from "../../cron/crontab.ts";
import { everFires } from "../../cron/croner.ts";
import type { ScheduleFields } from "../../cron/fields.ts";
import { type Candidate, descriptionOf, type JobField, type Scope } from "./plan.ts";
import { shellQuote } from "../../domain/shell.ts";
import { type DefaultZone, zoneInWords } from "../zone.ts";

export interface CrontabSource {
  text: string;
  /** For generated ids and messages: `--name`, else the file's base name. */
  name: string;
  /** A user column precedes the command, as in /etc/crontab and /etc/cron.d files. */
  system: boolean;
  /**
   * Whom the lines of a user crontab run as (`--user`): its owner, as cron
   * ran them; null = the service's own user. Null with `system`: those
   * lines name their own.
   */
  owner: string | null;
}

/**
 * A crontab read from `path` (`-` for stdin). Without `system`, files cron
 * reads with a user column (/etc/crontab, /etc/cron.d/*) get one. `name`
 * prefixes the generated ids: the file's base name unless given. What is
 * no regular file (`isFile` false: standard input, a pipe such as
 * `<(crontab -l)`) has no name that tells it from another crontab, so it
 * needs one given: sharing one default, one crontab's `--prune` removed
 * another's jobs. A name that makes no prefix is refused, not replaced.
 * `owner` ('' = none) is whom a user crontab's lines run as; refused for a
 * system crontab, whose lines each name their user.
 */
export function crontabSource(
  path: string,
  text: string,
  system: boolean | undefined,
  name: string | undefined,
  isFile: boolean,
  owner = "",
): CrontabSource {
  const what = path === "-" ? "standard input" : path;
  const hasUserColumn = system ?? isSystemCrontab(path);
  if (owner !== "" && hasUserColumn) {
    throw new UsageError(
      `--user ${owner}: the lines of ${what} have a user column (${
        system === undefined ? "it is a system crontab" : "--system"
      }), and each runs as the user it names; drop --user, or give --no-system if it is a user crontab`,
    );
  }
  if (owner !== "") validateUserName(owner);
  if (name === undefined && !isFile) {
    throw new UsageError(
      `${what} is no file whose name can prefix the ids of its jobs: give a name with --name (e.g. --name "$USER" for \`crontab -l\`), the same at every import of this crontab`,
    );
  }
  const named = name ?? path.slice(path.lastIndexOf("/") + 1);
  if (slug(named, 40) === "") {
    throw new UsageError(
      `${
        name === undefined ? `the file name of ${path}` : "--name"
      }: '${named}' makes no prefix for the ids of its jobs: the prefix is its letters a-z and digits (other characters become '-'), and it has none; give one with --name, e.g. --name alice`,
    );
  }
  return { text, name: named, system: hasUserColumn, owner: owner === "" ? null : owner };
}

/**
 * Whether cron reads the file at absolute `path` with a user column:
 * /etc/crontab and the files of /etc/cron.d (give the path resolved, as
 * `cron.d/x` or `./x` read from /etc/cron.d are the same file).
 */
export function isSystemCrontab(path: string): boolean {
  return path === "/etc/crontab" || path.startsWith("/etc/cron.d/");
}

/** The environment lines above a job line, as cron hands them to it. */
interface Environment {
  vars: Map<string, string>;
  /** CRON_TZ: the zone the schedule is read in (TZ only reaches the command, as in cronie). */
  zone: string | null;
  mailto: string | null;
  shell: string | null;
}

/** One job line, split into its parts. */
interface Line {
  number: number;
  /** `m h dom mon dow`, or a nickname such as `@daily`. */
  when: string;
  user: string | null;
  command: string;
  comments: string[];
  id: string | null;
  /** The line of the comment that set `id`. */
  idLine: number | null;
}

const ENV_LINE = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/;
/** Any case, any id: one that is not valid is refused with why, not taken for a comment. */
const ID_COMMENT = /^jobsmanager:\s*id=(.*?)\s*$/i;
/** The legend of the crontab template Debian's `crontab -e` starts with: no job's description. */
const FIELD_LEGEND = /^m\s+h\s+dom\s+mon\s+dow\s+(user\s+)?command$/;
/** The legend or diagram of a crontab whose lines have a user column (/etc/crontab's template). */
const USER_COLUMN = /^(m\s+h\s+dom\s+mon\s+dow|\*(\s+\*){4})\s+user(-name)?\s+command/;
/** A line of the field diagram Debian's /etc/crontab has above its first job: it ends the paragraph. */
const FIELD_DIAGRAM = /^(\|\s*)*(\.-+\s|\|\s*$)|^\*(\s+\*){4}\s/;

/**
 * The zones a schedule without `CRON_TZ` may be read in: cron read it in
 * this machine's (`system`); a job that names no zone fires in `service`,
 * resolved as `job list` resolves it.
 */
export interface CrontabZones {
  system: string;
  service: DefaultZone;
}

/** Every line of a crontab as candidate jobs, in file order. */
export function candidatesFromCrontab(
  source: CrontabSource,
  zones: CrontabZones,
  now: number,
): Candidate[] {
  const env: Environment = { vars: new Map(), zone: null, mailto: null, shell: null };
  const candidates: Candidate[] = [];
  const ids = new Ids(source.name);
  let comments: string[] = [];
  let id: string | null = null;
  let idLine: number | null = null;
  // Debian's template says whether the lines below it have a user column.
  let legendUser = false;
  source.text.split(/\r?\n/).forEach((raw, index) => {
    const number = index + 1;
    const text = raw.trim();
    if (text === "") {
      comments = [];
      [id, idLine] = [null, null];
      return;
    }
    if (text.startsWith("#")) {
      const comment = text.replace(/^#+\s?/, "").trimEnd();
      const override = ID_COMMENT.exec(comment);
      if (override) [id, idLine] = [override[1], number];
      // An empty comment line ends a paragraph: the one right above the job describes it.
      else if (comment === "" || FIELD_DIAGRAM.test(comment)) comments = [];
      else if (!FIELD_LEGEND.test(comment)) comments.push(comment);
      if (USER_COLUMN.test(comment)) legendUser = true;
      return;
    }
    const assignment = ENV_LINE.exec(text);
    if (assignment) {
      setVariable(env, assignment[1], unquote(assignment[2]));
      // The comments described the variable; an id given for the job below it still holds.
      comments = [];
      return;
    }
    const line = splitLine(text, source.system);
    if (typeof line === "string") {
      candidates.push(refused(`line ${number}`, id ?? ids.fallback(number), line));
    } else if (line.user !== null && /^[0-9]+$/.test(line.user)) {
      // The id the line's job would have: `--ignore ID` names it, and the line put right keeps it.
      const lineId = id === null ? ids.generate(line.command) : ids.keep(id);
      candidates.push(refused(`line ${number}`, lineId, numericUser(line.user)));
    } else {
      const user = line.user ?? source.owner;
      candidates.push(
        ...lineCandidates(
          { ...line, user, number, comments, id, idLine },
          snapshot(env),
          zones,
          ids,
          now,
        ),
      );
    }
    comments = [];
    [id, idLine] = [null, null];
  });
  if (legendUser && !source.system) {
    for (const c of candidates) {
      c.notes.push(
        "the crontab's own legend says its lines have a user column, but they were read without one: if they have one, import it again with --system, or each user name is taken as the first word of the command",
      );
    }
  }
  return candidates;
}

/**
 * Why a line whose user column is a number is not imported: cron takes
 * the column for a name (getpwnam), so it ran the line only as an account
 * of that name (useradd makes one), while a job's numeric user is a uid:
 * the job would run as another account than cron ran the line as.
 */
function numericUser(user: string): string {
  return `user column '${user}' is a number: cron looks it up as an account name, never as a uid, so it ran this line only as an account named '${user}', and jobsmanager would run it as uid ${user}; write the account's name in the column (\`getent passwd ${user}\` names uid ${user}'s), or leave the line out with --ignore and add its job with \`jobsmanager job add --user UID\` (the uid of the account named '${user}')`;
}

function refused(source: string, id: string, problem: string): Candidate {
  return { source, id, job: null, notes: [], problem };
}

/** `"value"` or `'value'` keeps its blanks; otherwise the value is trimmed. */
function unquote(value: string): string {
  const trimmed = value.trim();
  const quoted = /^(["'])(.*)\1$/.exec(trimmed);
  return quoted ? quoted[2] : trimmed;
}

function setVariable(env: Environment, name: string, value: string): void {
  // An empty CRON_TZ unsets it: cron reads the lines below in the system zone again.
  if (name === "CRON_TZ") env.zone = value === "" ? null : value;
  else if (name === "MAILTO") env.mailto = value;
  else if (name === "SHELL") env.shell = value;
  else env.vars.set(name, value);
}

function snapshot(env: Environment): Environment {
  return { ...env, vars: new Map(env.vars) };
}

/** A job line's parts, or why it is not one. */
function splitLine(
  text: string,
  system: boolean,
): Omit<Line, "number" | "comments" | "id" | "idLine"> | string {
  const userPart = system ? "(\\S+)\\s+" : "()";
  const nickname = new RegExp(`^(@\\S+)\\s+${userPart}(.*)$`).exec(text);
  const fields = new RegExp(`^((?:\\S+\\s+){4}\\S+)\\s+${userPart}(.*)$`).exec(text);
  const match = text.startsWith("@") ? nickname : fields;
  const expected = `expected ${text.startsWith("@") ? "a nickname" : "five time fields"}${
    system ? ", a user" : ""
  } and a command`;
  if (!match || match[3].trim() === "") return `'${text}' is not a crontab line (${expected})`;
  return { when: match[1].replace(/\s+/g, " "), user: system ? match[2] : null, command: match[3] };
}

/**
 * Cron's `%`: the command ends at the first unescaped `%`; the rest, with
 * each unescaped `%` as a newline, is its standard input. `\%` is a `%`.
 * As cron's do_command reads them: in the command a backslash escapes the
 * one character after it, so `\\%` is a backslash pair and then the split
 * (the pair stays, as cron hands it to the shell); in the input every
 * backslash is kept but one right before a `%`.
 */
export function splitPercent(text: string): { command: string; input: string | null } {
  let command = "";
  let input: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (input === null) {
      if (c === "\\" && i + 1 < text.length) {
        const next = text[++i];
        command += next === "%" ? "%" : c + next;
      } else if (c === "%") input = "";
      else command += c;
    } else if (c === "\\" && text[i + 1] === "%") {
      input += "%";
      i++;
    } else input += c === "%" ? "\n" : c;
  }
  return { command, input };
}

/** The command jobsmanager runs with /bin/sh -c, and the notes on how it was rewritten. */
function commandOf(line: Line, env: Environment): { command: string; notes: string[] } {
  const notes: string[] = [];
  const { command: body, input } = splitPercent(line.command);
  let command = body;
  if (env.shell !== null && env.shell !== "/bin/sh") {
    command = `exec ${env.shell} -c ${shellQuote(command)}`;
    notes.push(`SHELL=${env.shell}: the command runs as \`${env.shell} -c …\`, as cron ran it`);
  }
  if (input !== null && input !== "") {
    // Cron ends the input with a newline if it has none: a `read` of the last line needs it.
    const text = input.endsWith("\n") ? input : `${input}\n`;
    // A newline before the closing parenthesis: the command may end in a comment.
    command = `printf '%s' ${shellQuote(text)} | (\n${command}\n)`;
    notes.push("% in the command: the text after it is the command's standard input, as in cron");
  }
  return { command, notes };
}

/** The line's job, or two when it ORs day-of-month and day-of-week. */
function lineCandidates(
  line: Line,
  env: Environment,
  zones: CrontabZones,
  ids: Ids,
  now: number,
): Candidate[] {
  const source = `line ${line.number}`;
  const id = line.id === null ? ids.generate(line.command) : ids.keep(line.id);
  if (line.when.toLowerCase() === "@reboot") {
    return [refused(
      source,
      id,
      "@reboot runs once when cron starts, and jobsmanager has no such trigger; start it from a systemd unit (or `jobsmanager job run` after boot)",
    )];
  }
  const [, , dom = "*", , dow = "*"] = line.when.split(" ");
  try {
    if (line.id !== null) validateId(line.id);
  } catch (error) {
    // Said at the comment that gives the id, where it is put right.
    if (error instanceof ValidationError) {
      return [refused(`line ${line.idLine}`, id, error.message)];
    }
    throw error;
  }
  try {
    // Vixie cron ORs the two day fields unless one of them starts with `*`.
    const read = { ...line, zone: zoneOf(env, zones) };
    if (!dom.startsWith("*") && !dow.startsWith("*")) return splitDays(read, env, id, ids, now);
    const schedule = scheduleFromCrontab(line.when);
    return [candidate(read, env, id, schedule, [], now)];
  } catch (error) {
    if (error instanceof ValidationError) return [refused(source, id, error.message)];
    throw error;
  }
}

/**
 * The zone cron read the schedule in: `CRON_TZ`, else this machine's. The
 * job keeps it where the service's default zone is another (null: the default).
 */
function zoneOf(
  env: Environment,
  zones: CrontabZones,
): { name: string | null; note: string | null } {
  if (env.zone !== null) return { name: env.zone, note: null };
  if (zones.system === zones.service.name) {
    // Nothing says the service's zone: the job is left to it, and the plan says so plainly.
    return {
      name: null,
      note: zones.service.source !== "local"
        ? null
        : `cron read its schedule in this machine's zone, ${zones.system}; the job names none, so it fires in the service's default zone, taken to be ${
          zoneInWords(zones.service)
        }: a service in another zone fires it there (\`job update ID --timezone ${zones.system}\` pins it)`,
    };
  }
  return {
    name: zones.system,
    note:
      `cron read its schedule in this machine's zone, ${zones.system}; the job keeps it, where a job that names no zone fires in ${
        zoneInWords(zones.service)
      }`,
  };
}

/**
 * `m h DOM mon DOW` fires on a day when either matches: the DOM days, plus
 * the DOW weekdays among the other days. Two jobs, never both on one day;
 * one when either half never comes (day 31 of February).
 */
function splitDays(
  line: ZonedLine,
  env: Environment,
  id: string,
  ids: Ids,
  now: number,
): Candidate[] {
  const [minute, hour, dom, month, dow] = line.when.split(" ");
  const byDay = scheduleFromCrontab(`${minute} ${hour} ${dom} ${month} *`);
  const byWeekday = scheduleFromCrontab(`${minute} ${hour} * ${month} ${dow}`);
  const syntax = SYNTAX.crontab.day;
  const days = new Set(splitList(dom, syntax).map((e) => parseTerm(e, syntax)).flatMap(termValues));
  const others = [...Array(31).keys()].map((d) => d + 1).filter((d) => !days.has(d));
  if (others.length === 0) {
    return [candidate(line, env, id, byDay, [
      `day-of-month '${dom}' names every day, so cron ran it daily whatever day-of-week said`,
    ], now)];
  }
  const otherDays = runList(others, String);
  const onOtherDays = { ...byWeekday, day: otherDays };
  const cronRuns =
    `cron runs this line on day ${byDay.day} of the month OR on ${byWeekday.day_of_week}`;
  if (!everFires(byDay) && everFires(onOtherDays)) {
    return [candidate(line, env, id, onOtherDays, [
      `${cronRuns}; day ${byDay.day} never comes in month ${byDay.month}, so it ran on ${byWeekday.day_of_week} only`,
    ], now)];
  }
  if (everFires(byDay) && !everFires(onOtherDays)) {
    return [candidate(line, env, id, byDay, [
      `${cronRuns}; in month ${byDay.month} every ${byWeekday.day_of_week} falls on day ${byDay.day}, so it ran on those days only`,
    ], now)];
  }
  const [dayId, weekdayId] = [ids.take(`${id}-day`), ids.take(`${id}-weekday`)];
  const why =
    `${cronRuns}; jobsmanager ANDs the fields, so it is two jobs, ${dayId} and ${weekdayId} (${byWeekday.day_of_week} on days ${otherDays}), which never fire together`;
  return [
    candidate(line, env, dayId, byDay, [why], now),
    candidate(line, env, weekdayId, onOtherDays, [why], now),
  ];
}

/** A job line with the zone its schedule is read in. */
type ZonedLine = Line & { zone: { name: string | null; note: string | null } };

function candidate(
  line: ZonedLine,
  env: Environment,
  id: string,
  schedule: ScheduleFields,
  extraNotes: string[],
  now: number,
): Candidate {
  const source = `line ${line.number}`;
  const { command, notes } = commandOf(line, env);
  notes.push(...extraNotes);
  if (line.zone.note !== null) notes.push(line.zone.note);
  if (line.user !== null) {
    notes.push(
      `runs as ${line.user}, as cron ran it: only a service run as root runs a job as another user (User=root in its systemd unit), else its runs are errors saying so; \`job update --user ''\` runs it as the service's own user`,
    );
  } else {
    // cron ran it as the crontab's owner; without --user nothing says who that is.
    notes.push(
      "runs as the service's own user, not as the crontab's owner as cron ran it: as root under a service run as root; import with --user OWNER (or `job update --user OWNER`) to run it as its owner",
    );
  }
  // Cron runs each command in HOME: the owner's, or the crontab's HOME= line.
  const home = env.vars.get("HOME");
  const cwd = home?.startsWith("/") ? home : undefined;
  // A job with a user runs in that user's home when it names no cwd, as cron ran it.
  const homeless = cwd === undefined && line.user === null;
  const ranInHome = "cron ran it in the crontab owner's home directory; jobsmanager runs it in";
  if (homeless) {
    notes.push(
      `${ranInHome} the service's working directory (\`job update --cwd DIR\` sets another)`,
    );
  }
  // An empty MAILTO is cron sending no mail: nothing is lost. Mail is one address for every job
  // (notify.mailto), so a crontab's is not made a job's own.
  if (env.mailto !== null && env.mailto !== "") {
    notes.push(
      `MAILTO=${env.mailto} not imported per job: set notify.mailto in the config to mail failures, silence alerts and recoveries of every job; the output is in \`jobsmanager runs show\``,
    );
  }
  const { description, cut } = descriptionOf(line.comments.join(" "));
  if (cut !== null) {
    // As the APScheduler import says of a long name: the job is kept, its description cut.
    const comment = line.comments.length === 1
      ? "its comment is"
      : `its comment's ${line.comments.length} lines, joined, are`;
    notes.push(
      `${comment} ${cut} characters long: the description keeps the first ${
        MAX_DESCRIPTION - 1
      } and an ellipsis (${MAX_DESCRIPTION} is the most a description holds)`,
    );
  }
  const options: JobOptions = {
    command,
    schedule,
    timezone: line.zone.name ?? undefined,
    // cron never kills a job: neither does the imported one.
    timeout: "0",
    cwd,
    env: [...env.vars].map(([k, v]) => `${k}=${v}`),
    description: description === "" ? undefined : description,
    // Kept as written, root too: the job runs as cron ran it.
    user: line.user ?? undefined,
  };
  // What a crontab has no word for, and a working directory or user it does not give (the
  // plan's note suggests `job update --cwd`; a user crontab has no user column). Its comments
  // are its description: removed, it goes.
  const keeps: JobField[] = [
    ...CRONTAB_SILENT,
    ...(cwd === undefined && line.user === null ? ["cwd" as const] : []),
    ...(line.user === null ? ["user" as const] : []),
  ];
  // A stored job's working directory, where the crontab gives none: the one an earlier import
  // made of a HOME= line (the job's HOME too), since removed, goes with it; one set since stays,
  // and the note says where the job runs then.
  const against = homeless
    ? (stored: Job) => {
      if (stored.cwd === null) return { keeps, notes };
      if (stored.cwd === stored.env?.HOME) {
        return { keeps: keeps.filter((f) => f !== "cwd"), notes };
      }
      const kept =
        `${ranInHome} ${stored.cwd}, the working directory stored (\`job update --cwd ''\` runs it in the service's)`;
      return { keeps, notes: notes.map((n) => n.startsWith(ranInHome) ? kept : n) };
    }
    : undefined;
  try {
    const job = buildJob(id, options, null, now);
    return { source, id, job, notes, problem: null, keeps, against };
  } catch (error) {
    if (error instanceof ValidationError) return refused(source, id, error.message);
    throw error;
  }
}

/**
 * The fields a crontab has no word for: a job imported again keeps what
 * was set since (its timeout, whether it is enabled, its retries).
 */
const CRONTAB_SILENT: readonly JobField[] = [
  "timeout",
  "enabled",
  "max_instances",
  "coalesce",
  "misfire_grace_time",
  ...RUN_POLICY_FIELDS,
];

/** What the ids a crontab generates start with: `NAME.` (a name without letters or digits is refused). */
function idPrefix(name: string): string {
  return `${slug(name, 40)}.`;
}

/**
 * The stored jobs a crontab speaks for: those with the ids it generates
 * (`NAME.…`). Edited, it may no longer make some of them; `prune` removes
 * those, else they are listed as stale. With `update`, the stored jobs it
 * names are changed to what it says; else they are kept.
 */
export function crontabScope(source: CrontabSource, prune: boolean, update: boolean): Scope {
  const prefix = idPrefix(source.name);
  return {
    owns: (id) => id.startsWith(prefix),
    prune,
    update,
    note:
      `no line of this crontab makes it any more (its id has the crontab's prefix, ${prefix}); it is still stored and fires: \`--prune\` removes it`,
  };
}

/** Generated ids: `NAME.command-words`, unique within the file. */
class Ids {
  /** Every id given so far, generated, derived (`-day`) or set by a comment. */
  private readonly taken = new Set<string>();
  private readonly prefix: string;

  constructor(name: string) {
    this.prefix = idPrefix(name);
  }

  generate(command: string): string {
    return this.take(`${this.prefix}${slug(splitPercent(command).command, 48) || "job"}`);
  }

  /** An id a comment sets, as it is: given twice, the plan says so. */
  keep(id: string): string {
    this.taken.add(id);
    return id;
  }

  /** `id`, or `id-2`, `id-3`… when an earlier line was given it. */
  take(id: string): string {
    let out = id;
    for (let n = 2; this.taken.has(out); n++) out = `${id}-${n}`;
    this.taken.add(out);
    return out;
  }

  /** For a line that is not a job line at all. */
  fallback(number: number): string {
    return `${this.prefix}line-${number}`;
  }
}

function slug(text: string, max: number): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+/, "").slice(0, max)
    .replace(/-+$/, "");
}
