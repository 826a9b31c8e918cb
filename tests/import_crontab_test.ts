/**
 * Crontab files as jobs: the /etc/cron.d files Debian packages ship (see
 * fixtures/crontab/README.md), a user crontab with every feature, and the
 * rewrites checked by running them or by comparing fire times with cron's.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "./assert.ts";
import {
  candidatesFromCrontab,
  crontabScope,
  crontabSource,
  splitPercent,
} from "../src/app/import/crontab_file.ts";
import { UsageError, ValidationError } from "../src/errors.ts";
import type { Candidate } from "../src/app/import/plan.ts";
import { scheduleText } from "../src/domain/job.ts";
import { compileSchedule } from "../src/cron/croner.ts";

const FIXTURES = new URL("./fixtures/crontab/", import.meta.url);
/** Cron and the service in one zone: no job is given a zone of its own. */
const UTC = { system: "UTC", service: { name: "UTC", source: "configured" as const } };

/** The note of a job of a user crontab imported without --user. */
const NO_OWNER =
  "runs as the service's own user, not as the crontab's owner as cron ran it: as root under a service run as root; import with --user OWNER (or `job update --user OWNER`) to run it as its owner";

function read(name: string, system = true): Candidate[] {
  const text = Deno.readTextFileSync(new URL(name, FIXTURES));
  return candidatesFromCrontab({ text, name, system, owner: null }, UTC, 0);
}

/** id, schedule and command of each candidate, or its problem. */
function summary(candidates: Candidate[]): string[] {
  return candidates.map((c) =>
    c.job ? `${c.id} | ${scheduleText(c.job)} | ${c.job.command}` : `${c.id} ! ${c.problem}`
  );
}

Deno.test("a crontab whose own legend names a user column, read without one: each job says so", () => {
  const noted = (c: Candidate) => c.notes.some((n) => n.includes("import it again with --system"));
  const without = read("etc-crontab", false);
  assert(without.length > 0 && without.every(noted), JSON.stringify(without, null, 1));
  assertEquals(read("etc-crontab").filter(noted), []);
  // A user crontab's legend has no user column: no such note.
  const legend = "# m h  dom mon dow   command\n0 1 * * * echo hi\n";
  const user = candidatesFromCrontab(
    { text: legend, name: "u", system: false, owner: null },
    UTC,
    0,
  );
  assertEquals(user.filter(noted), []);
});

Deno.test("Debian's /etc/cron.d files import line by line, with their PATH", () => {
  assertEquals(summary(read("sysstat")), [
    "sysstat.command-v-debian-sa1-dev-null-debian-sa1-1-1 | 0 5-55/10 * * * * | command -v debian-sa1 > /dev/null && debian-sa1 1 1",
    "sysstat.command-v-debian-sa1-dev-null-debian-sa1-60-2 | 0 59 23 * * * | command -v debian-sa1 > /dev/null && debian-sa1 60 2",
  ]);
  const sysstat = read("sysstat")[0];
  assertEquals(sysstat.job!.env, {
    PATH: "/usr/lib/sysstat:/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
  });
  assertEquals(sysstat.job!.description, "Activity reports every 10 minutes everyday");
  assertEquals(sysstat.job!.timeout, 0);
  // The user column is the job's user, root too; with no HOME line it runs in their home, as cron ran it.
  assertEquals(sysstat.notes, [
    "runs as root, as cron ran it: only a service run as root runs a job as another user (User=root in its systemd unit), else its runs are errors saying so; `job update --user ''` runs it as the service's own user",
  ]);
  assertEquals([sysstat.job!.user, sysstat.job!.cwd], ["root", null]);
  assertEquals(summary(read("php")), [
    "php.x-usr-lib-php-sessionclean-if-d-run-systemd-syst | 0 09,39 * * * * | [ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
  ]);
  const [certbot] = read("certbot");
  assertEquals(scheduleText(certbot.job!), "0 0 */12 * * *");
  // SHELL=/bin/sh is jobsmanager's shell already: the command is unchanged.
  assertEquals(
    certbot.job!.command,
    "test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew --no-random-sleep-on-renew",
  );
  assertEquals(summary(read("e2scrub_all")).map((s) => s.split(" | ")[1]), [
    "0 30 3 * * sun",
    "0 10 3 * * *",
  ]);
  // mdadm escapes % as crontab(5) says: \% is a plain %.
  assertMatch(read("mdadm")[0].job!.command, /\[ \$\(date \+%d\) -le 7 \]/);
  assertMatch(read("mdadm")[0].job!.description!, /^By default, run at 00:57 on every Sunday/);
  assertEquals(read("anacron").map((c) => scheduleText(c.job!)), ["0 30 7-23 * * *"]);
});

Deno.test("an /etc/cron.d line's user is the job's user; a user crontab's lines name none, and keep one set since", () => {
  const text = [
    "HOME=/srv/www",
    "*/5 * * * * www-data php /srv/www/cron.php",
    "0 1 * * * 33 /usr/local/bin/by-uid",
    "0 2 * * * john.doe@corp.example.com /usr/local/bin/ad-report",
  ].join("\n");
  const [www, byUid, ad] = candidatesFromCrontab(
    { text, name: "web", system: true, owner: null },
    UTC,
    0,
  );
  assertEquals([www.job!.user, www.job!.cwd, www.job!.command], [
    "www-data",
    "/srv/www",
    "php /srv/www/cron.php",
  ]);
  // cron takes the column for a name: a number is not imported as a uid (see below).
  assertEquals([byUid.job, byUid.problem?.split(":")[0]], [null, "user column '33' is a number"]);
  // An sssd account of AD, as getent knows it.
  assertEquals([ad.job?.user, ad.problem], ["john.doe@corp.example.com", null]);
  assertMatch(
    www.notes.join("\n"),
    /^runs as www-data, as cron ran it: only a service run as root/,
  );
  // Not the user's, nor the cwd: the line gives both, an import again sets them as cron has them.
  assert(!www.keeps!.includes("user") && !www.keeps!.includes("cwd"), String(www.keeps));
  const [mine] = candidatesFromCrontab(
    { text: "0 1 * * * backup\n", name: "u", system: false, owner: null },
    UTC,
    0,
  );
  assertEquals(mine.job!.user, null);
  assert(mine.keeps!.includes("user") && mine.keeps!.includes("cwd"), String(mine.keeps));
});

Deno.test("/etc/crontab: weekday 7 is Sunday, generated ids stay unique", () => {
  assertEquals(summary(read("etc-crontab")).map((s) => s.split(" | ").slice(0, 2).join(" | ")), [
    "etc-crontab.cd-run-parts-report-etc-cron-hourly | 0 17 * * * *",
    "etc-crontab.test-x-usr-sbin-anacron-cd-run-parts-report-etc | 0 25 6 * * *",
    "etc-crontab.test-x-usr-sbin-anacron-cd-run-parts-report-etc-2 | 0 47 6 * * sun",
    "etc-crontab.test-x-usr-sbin-anacron-cd-run-parts-report-etc-3 | 0 52 6 1 * *",
  ]);
});

Deno.test("a user crontab: ids, comments, env, zones, MAILTO, @reboot and bad lines", () => {
  const found = read("user-crontab", false);
  assertEquals(summary(found), [
    "wiki-backup | 0 30 2 * * mon-fri | /usr/local/bin/backup.sh wiki >> /var/log/backup.log 2>&1",
    "user-crontab.date-h-tmp-hours | 0 0 * * * * | date +%H >> /tmp/hours",
    "user-crontab.mail-s-timesheets-team-day | 0 0 9 1,15 * * | printf '%s' 'Please fill in your timesheets.\nThanks\n' | (\nmail -s \"Timesheets\" team\n)",
    "user-crontab.mail-s-timesheets-team-weekday | 0 0 9 2-14,16-31 * fri | printf '%s' 'Please fill in your timesheets.\nThanks\n' | (\nmail -s \"Timesheets\" team\n)",
    'user-crontab.echo-good-morning-new-york | 0 15 8 * * * | echo "good morning, New York"',
    "user-crontab.usr-local-bin-warm-cache ! @reboot runs once when cron starts, and jobsmanager has no such trigger; start it from a systemd unit (or `jobsmanager job run` after boot)",
    "user-crontab.line-18 ! '*/5 * * *' is not a crontab line (expected five time fields and a command)",
    "user-crontab.echo-bad-minute ! cron: minute '61' is out of range (allowed 0-59)",
  ]);
  const [backup, , day, weekday, newYork] = found;
  assertEquals(backup.job!.description, "Nightly backup of the wiki");
  assertEquals(backup.job!.env, { PATH: "/usr/local/bin:/usr/bin:/bin" });
  assertEquals(backup.job!.timezone, null);
  assertEquals(newYork.job!.timezone, "America/New_York");
  assert(!("CRON_TZ" in newYork.job!.env) && !("MAILTO" in newYork.job!.env));
  assertMatch(
    backup.notes.join("\n"),
    /MAILTO=ops@example.com not imported per job: set notify\.mailto in the config/,
  );
  assertEquals(day.job!.description, "Remind the team on the 1st and 15th, and every Friday");
  assertMatch(day.notes.join("\n"), /day 1,15 of the month OR on fri; .* two jobs/);
  assertEquals(day.notes, weekday.notes);
});

Deno.test("the two jobs of a day-of-month OR day-of-week line fire exactly when cron did", () => {
  const text = "30 4 1,15 * 5 echo pay day\n0 6 31 1-3 sat,sun echo odd\n";
  const jobs = candidatesFromCrontab({ text, name: "x", system: false, owner: null }, UTC, 0).map((
    c,
  ) => c.job!);
  assertEquals(jobs.length, 4);
  for (
    const [[first, second], [hour, minute, days, months, weekdays]] of [
      [[jobs[0], jobs[1]], [4, 30, [1, 15], [1, 12], [5]]],
      [[jobs[2], jobs[3]], [6, 0, [31], [1, 3], [6, 0]]],
    ] as const
  ) {
    const fires = [first, second].flatMap((job) =>
      compileSchedule(job, "UTC").nextRuns(400, new Date("2025-12-31T23:59:59Z"))
        .filter((d) => d.getUTCFullYear() === 2026).map((d) => d.toISOString())
    );
    // Cron's own rule, day by day through 2026.
    const expected: string[] = [];
    for (let day = Date.UTC(2026, 0, 1); day < Date.UTC(2027, 0, 1); day += 86_400_000) {
      const d = new Date(day);
      const month = d.getUTCMonth() + 1;
      if (month < months[0] || month > months[1]) continue;
      if (
        (days as readonly number[]).includes(d.getUTCDate()) ||
        (weekdays as readonly number[]).includes(d.getUTCDay())
      ) {
        expected.push(new Date(day + (hour * 60 + minute) * 60_000).toISOString());
      }
    }
    assertEquals(fires.sort(), expected);
  }
});

Deno.test("a day-of-month that names every day needs no weekday job", () => {
  const [only, ...rest] = candidatesFromCrontab(
    { text: "0 1 1-31 * mon echo daily\n", name: "x", system: false, owner: null },
    UTC,
    0,
  );
  assertEquals(rest, []);
  assertEquals(scheduleText(only.job!), "0 0 1 1-31 * *");
  assertMatch(only.notes[0], /names every day, so cron ran it daily/);
});

async function sh(command: string): Promise<string> {
  const out = await new Deno.Command("/bin/sh", { args: ["-c", command], stdin: "null" }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test("% becomes standard input exactly as cron sends it", async () => {
  assertEquals(splitPercent("date +\\%s"), { command: "date +%s", input: null });
  assertEquals(splitPercent("cat%a\\%b%c\\d%"), { command: "cat", input: "a%b\nc\\d\n" });
  // In the command a backslash escapes the next character, a backslash too: `\\%` splits there.
  assertEquals(splitPercent("echo a\\\\%b%c"), { command: "echo a\\\\", input: "b\nc" });
  assertEquals(splitPercent("echo \\\\\\%x"), { command: "echo \\\\%x", input: null });
  // In the input every backslash stays but the one right before a `%`.
  assertEquals(splitPercent("cat%\\\\%\\\\"), { command: "cat", input: "\\%\\\\" });
  const [job] = candidatesFromCrontab(
    { text: "* * * * * tr a-z A-Z # shout%it's%here\n", name: "x", system: false, owner: null },
    UTC,
    0,
  );
  // Cron ends the input with a newline, so that the last line is a line.
  assertEquals(await sh(job.job!.command), "IT'S\nHERE\n");
  assertMatch(job.notes[0], /% in the command: the text after it is the command's standard input/);
  const [reader] = candidatesFromCrontab(
    {
      text: '* * * * * while read l; do echo "got $l"; done%one%two\n',
      name: "x",
      system: false,
      owner: null,
    },
    UTC,
    0,
  );
  assertEquals(await sh(reader.job!.command), "got one\ngot two\n");
});

Deno.test("a HOME= line is the directory cron ran the commands below it in", () => {
  const [job] = candidatesFromCrontab(
    {
      text: "HOME=/srv/app\n0 7 * * * ./run.sh >> log.txt\n",
      name: "x",
      system: false,
      owner: null,
    },
    UTC,
    0,
  );
  assertEquals([job.job!.cwd, job.job!.env.HOME], ["/srv/app", "/srv/app"]);
  assertEquals(job.notes, [NO_OWNER]);
});

Deno.test("a user crontab imported with --user runs as its owner, as cron ran it; without, the note says whose user it runs as", () => {
  const text = "0 1 * * * backup\n";
  const [owned] = candidatesFromCrontab({ text, name: "u", system: false, owner: "alice" }, UTC, 0);
  assertEquals([owned.job!.user, owned.job!.cwd], ["alice", null]);
  assertMatch(owned.notes.join("\n"), /^runs as alice, as cron ran it: only a service run as root/);
  assert(!owned.notes.includes(NO_OWNER), owned.notes.join("\n"));
  // The line gives the user: imported again with --update, it is set as cron has it.
  assert(!owned.keeps!.includes("user"), String(owned.keeps));
  const [none] = candidatesFromCrontab({ text, name: "u", system: false, owner: null }, UTC, 0);
  assertEquals(none.job!.user, null);
  assert(none.notes.includes(NO_OWNER), none.notes.join("\n"));
});

Deno.test("import crontab --user: '' is none, a malformed name is refused, and so is any with a system crontab", () => {
  assertEquals(crontabSource("/tmp/u", "", undefined, undefined, true, "jo@corp").owner, "jo@corp");
  assertEquals(crontabSource("/tmp/u", "", undefined, undefined, true, "").owner, null);
  assertEquals(crontabSource("/tmp/u", "", undefined, undefined, true).owner, null);
  assertThrows(
    () => crontabSource("/tmp/u", "", undefined, undefined, true, "bob smith"),
    ValidationError,
    'user: "bob smith" is not a user name or uid',
  );
  assertThrows(
    () => crontabSource("/etc/cron.d/backup", "", undefined, undefined, true, "alice"),
    UsageError,
    "--user alice: the lines of /etc/cron.d/backup have a user column (it is a system crontab), and each runs as the user it names; drop --user, or give --no-system if it is a user crontab",
  );
  assertThrows(
    () => crontabSource("/tmp/u", "", true, undefined, true, "alice"),
    UsageError,
    "--user alice: the lines of /tmp/u have a user column (--system)",
  );
});

Deno.test("descriptions: the comment paragraph right above the job; ids hold across variables", () => {
  const text = [
    "# Edit this file to introduce tasks to be run by cron.",
    "#",
    "# For more information see the manual pages of crontab(5) and cron(8)",
    "#",
    "# m h  dom mon dow   command",
    "0 5 * * 1 tar -zcf /var/backups/home.tgz /home/",
    "",
    "# jobsmanager: id=keepme",
    "# the shell for the job below",
    'MAILTO=""',
    "0 3 * * * /bin/important",
  ].join("\n");
  const [first, second] = candidatesFromCrontab(
    { text, name: "x", system: false, owner: null },
    UTC,
    0,
  );
  assertEquals(first.job!.description, null);
  assertEquals([second.id, second.job!.description], ["keepme", null]);
  // An empty MAILTO turns cron's mail off: nothing is lost, so nothing to note.
  assert(!second.notes.some((n) => n.includes("MAILTO")), second.notes.join("\n"));
});

Deno.test("CRON_TZ is the schedule's zone; TZ only reaches the command, as cron reads them", () => {
  const found = candidatesFromCrontab(
    {
      text: "TZ=Asia/Tokyo\n0 6 * * * a\nCRON_TZ=UTC\nTZ=America/New_York\n0 6 * * * b\n",
      name: "x",
      system: false,
      owner: null,
    },
    UTC,
    0,
  );
  assertEquals(found.map((c) => [c.job!.timezone, c.job!.env.TZ]), [
    [null, "Asia/Tokyo"],
    ["UTC", "America/New_York"],
  ]);
});

Deno.test("SHELL other than /bin/sh runs the command through it", async () => {
  const [job] = candidatesFromCrontab(
    { text: 'SHELL=/bin/bash\n* * * * * echo "it\'s $0"\n', name: "x", system: false, owner: null },
    UTC,
    0,
  );
  assertEquals(job.job!.command, `exec /bin/bash -c 'echo "it'\\''s $0"'`);
  assertEquals(await sh(job.job!.command), "it's /bin/bash\n");
  assertMatch(job.notes[0], /SHELL=\/bin\/bash: the command runs as `\/bin\/bash -c …`/);
});

Deno.test("a system line whose user column is a number is refused: cron takes it for a name, jobsmanager for a uid", () => {
  const text =
    "0 4 * * * 1000 echo x\n# jobsmanager: id=pinned\n0 5 * * * 0 echo y\n0 6 * * * u1000 echo z\n";
  const found = candidatesFromCrontab({ text, name: "x", system: true, owner: null }, UTC, 0);
  const numeric = (user: string) =>
    `user column '${user}' is a number: cron looks it up as an account name, never as a uid, so it ran this line only as an account named '${user}', and jobsmanager would run it as uid ${user}; write the account's name in the column (\`getent passwd ${user}\` names uid ${user}'s), or leave the line out with --ignore and add its job with \`jobsmanager job add --user UID\` (the uid of the account named '${user}')`;
  assertEquals(summary(found), [
    `x.echo-x ! ${numeric("1000")}`,
    `pinned ! ${numeric("0")}`,
    "x.echo-z | 0 0 6 * * * | echo z",
  ]);
  assertEquals(found[2].job!.user, "u1000");
  // A user crontab's owner is the operator's word, not cron's column: a uid there is one.
  const owned = candidatesFromCrontab(
    { text: "0 4 * * * echo x\n", name: "x", system: false, owner: "1000" },
    UTC,
    0,
  );
  assertEquals([owned[0].problem, owned[0].job?.user], [null, "1000"]);
});

Deno.test("system lines without a command, and bad override ids, are refused with why", () => {
  const found = candidatesFromCrontab(
    { text: "0 1 * * * root\n@weekly root true\n", name: "x", system: true, owner: null },
    UTC,
    0,
  );
  assertEquals(found.map((c) => c.problem), [
    "'0 1 * * * root' is not a crontab line (expected five time fields, a user and a command)",
    null,
  ]);
  assertEquals(found[1].id, "x.true");
  assertEquals(scheduleText(found[1].job!), "0 0 0 * * sun");
  const bad = candidatesFromCrontab(
    { text: "# jobsmanager: id=bad/id\n0 2 * * * echo x\n", name: "x", system: false, owner: null },
    UTC,
    0,
  );
  assertMatch(bad[0].problem!, /^id: "bad\/id" has characters outside/);
});

Deno.test("generated ids never meet: not a split line's -day/-weekday, not an earlier -2", () => {
  const text = "0 0 1 * 1 run\n0 5 * * * run day\n0 6 * * * run\n0 7 * * * run 2\n";
  const found = candidatesFromCrontab({ text, name: "coll", system: false, owner: null }, UTC, 0);
  assertEquals(found.map((c) => [c.id, c.problem]), [
    ["coll.run-day", null],
    ["coll.run-weekday", null],
    ["coll.run-day-2", null],
    ["coll.run-2", null],
    ["coll.run-2-2", null],
  ]);
});

Deno.test("an id comment that names no valid id is refused with why, in any case", () => {
  const text =
    "# jobsmanager: id=bad id!\n0 1 * * * /usr/bin/y\n# JobsManager: id=Upper\n0 2 * * * z\n";
  const [bad, upper] = candidatesFromCrontab(
    { text, name: "idc", system: false, owner: null },
    UTC,
    0,
  );
  // Said at the comment's line, where it is put right, not at the job's.
  assertEquals([bad.id, bad.job, bad.source], ["bad id!", null, "line 1"]);
  assertMatch(bad.problem!, /^id: "bad id!" has characters outside A-Z a-z 0-9 \. _ : -/);
  assertEquals([upper.id, upper.job!.description], ["Upper", null]);
});

Deno.test("a day-field half that never comes is dropped with a note, not refused", () => {
  // Cron: every Monday of February (there is no 31st); and Feb 1-29 (every Monday is among them).
  const text = "0 0 31 2 1 echo feb-mondays\n0 0 1-29 2 mon echo feb-days\n";
  const [mondays, days, ...rest] = candidatesFromCrontab(
    { text, name: "x", system: false, owner: null },
    UTC,
    0,
  );
  assertEquals(rest, []);
  assertEquals([mondays.id, scheduleText(mondays.job!)], [
    "x.echo-feb-mondays",
    "0 0 0 1-30 2 mon",
  ]);
  assertMatch(mondays.notes[0], /day 31 never comes in month 2, so it ran on mon only$/);
  assertEquals([days.id, scheduleText(days.job!)], ["x.echo-feb-days", "0 0 0 1-29 2 *"]);
  assertMatch(days.notes[0], /every mon falls on day 1-29, so it ran on those days only$/);
});

Deno.test("a long comment becomes a description cut between characters, never in a pair, with a note", () => {
  const text = `# ${"a".repeat(998)}${"😀".repeat(5)}\n0 1 * * * echo x\n`;
  const [job] = candidatesFromCrontab({ text, name: "x", system: false, owner: null }, UTC, 0);
  const description = job.job!.description!;
  assert(description.isWellFormed());
  assertEquals([...description].length, 1000);
  assert(description.endsWith("a😀…"), description.slice(-5));
  // As the APScheduler import says of a long name.
  assert(
    job.notes.includes(
      "its comment is 1003 characters long: the description keeps the first 999 and an ellipsis (1000 is the most a description holds)",
    ),
    job.notes.join("\n"),
  );
  // Lines of a paragraph are joined with a space: that is what is counted.
  const paragraph = `# ${"b".repeat(600)}\n# ${"c".repeat(600)}\n0 2 * * * echo y\n`;
  const [joined] = candidatesFromCrontab(
    { text: paragraph, name: "y", system: false, owner: null },
    UTC,
    0,
  );
  assert(
    joined.notes.includes(
      "its comment's 2 lines, joined, are 1201 characters long: the description keeps the first 999 and an ellipsis (1000 is the most a description holds)",
    ),
    joined.notes.join("\n"),
  );
  // A comment that fits is kept whole, without a note.
  const [short] = candidatesFromCrontab(
    { text: `# ${"d".repeat(1000)}\n0 3 * * * echo z\n`, name: "z", system: false, owner: null },
    UTC,
    0,
  );
  assertEquals(short.job!.description, "d".repeat(1000));
  assertEquals(short.notes.filter((n) => n.includes("description")), []);
});

Deno.test("without CRON_TZ the job keeps the zone cron read it in, where the service's default differs", () => {
  const text = "30 2 * * * /usr/bin/nightly\nCRON_TZ=Asia/Tokyo\n30 3 * * * b\n";
  const zones = {
    system: "Europe/Berlin",
    service: { name: "America/New_York", source: "configured" as const },
  };
  const [nightly, tokyo] = candidatesFromCrontab(
    { text, name: "x", system: false, owner: null },
    zones,
    0,
  );
  assertEquals([nightly.job!.timezone, tokyo.job!.timezone], ["Europe/Berlin", "Asia/Tokyo"]);
  assertMatch(
    nightly.notes.join("\n"),
    /^cron read its schedule in this machine's zone, Europe\/Berlin; the job keeps it, where a job that names no zone fires in America\/New_York/m,
  );
  assert(!tokyo.notes.some((n) => n.includes("zone")), tokyo.notes.join("\n"));
  const [same] = candidatesFromCrontab({ text, name: "x", system: false, owner: null }, UTC, 0);
  assertEquals(same.job!.timezone, null);
  // No zone configured and no live service: the plan says the zone is only assumed.
  const unknown = { system: "UTC", service: { name: "UTC", source: "local" as const } };
  const [assumed] = candidatesFromCrontab(
    { text, name: "x", system: false, owner: null },
    unknown,
    0,
  );
  assertEquals(assumed.job!.timezone, null);
  assertEquals(
    assumed.notes[0],
    "cron read its schedule in this machine's zone, UTC; the job names none, so it fires in the service's default zone, taken to be UTC (this machine's: no jobsmanager.timezone is configured here and no service is live to report its own): a service in another zone fires it there (`job update ID --timezone UTC` pins it)",
  );
});

Deno.test("an empty CRON_TZ= is no CRON_TZ: the lines below it are read in this machine's zone", () => {
  const text =
    'CRON_TZ=America/New_York\n0 1 * * * echo ny\nCRON_TZ=""\n0 2 * * * back\nCRON_TZ=\n0 3 * * * bare\n';
  const zones = { system: "UTC", service: { name: "Asia/Tokyo", source: "configured" as const } };
  const [ny, back, bare] = candidatesFromCrontab(
    { text, name: "tz", system: false, owner: null },
    zones,
    0,
  );
  assertEquals(
    [ny.job!.timezone, back.job!.timezone, bare.job!.timezone],
    ["America/New_York", "UTC", "UTC"],
  );
  for (const c of [back, bare]) {
    assert(
      c.notes.includes(
        "cron read its schedule in this machine's zone, UTC; the job keeps it, where a job that names no zone fires in Asia/Tokyo (jobsmanager.timezone)",
      ),
      c.notes.join("\n"),
    );
  }
});

Deno.test("the field diagram above Debian's /etc/crontab jobs describes none of them", () => {
  const text = [
    "# Example of job definition:",
    "# .---------------- minute (0 - 59)",
    "# |  .------------- hour (0 - 23)",
    "# |  |  .---------- day of month (1 - 31)",
    "# |  |  |  .------- month (1 - 12) OR jan,feb,mar,apr ...",
    "# |  |  |  |  .---- day of week (0 - 6) (Sunday=0 or 7) OR sun,mon,tue,wed,thu,fri,sat",
    "# |  |  |  |  |",
    "# *  *  *  *  * user-name command to be executed",
    "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly",
  ].join("\n");
  const [hourly] = candidatesFromCrontab(
    { text, name: "crontab", system: true, owner: null },
    UTC,
    0,
  );
  assertEquals(hourly.job!.description, null);
});

Deno.test("a crontab's id prefix: its file's name or --name; none that makes no prefix", () => {
  const prefix = (path: string, name?: string, isFile = true) =>
    crontabScope(crontabSource(path, "", undefined, name, isFile), false, false).note
      .match(/prefix, (\S+)\)/)![1];
  assertEquals(prefix("/etc/crontab"), "crontab.");
  assertEquals(prefix("/etc/cron.d/e2scrub_all"), "e2scrub-all.");
  assertEquals(prefix("-", "Alice Smith", false), "alice-smith.");
  assertThrows(
    () => crontabSource("/tmp/ÄÖÜ", "", undefined, undefined, true),
    UsageError,
    "the file name of /tmp/ÄÖÜ: 'ÄÖÜ' makes no prefix for the ids of its jobs",
  );
  assertThrows(
    () => crontabSource("/dev/fd/63", "", undefined, undefined, false),
    UsageError,
    "/dev/fd/63 is no file whose name can prefix the ids of its jobs: give a name with --name",
  );
});
