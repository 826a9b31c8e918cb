/**
 * The notice directory (daemon/change_notices.ts) is one no other user can
 * swap entries in: a base another user owns, or writable by others and not
 * sticky, or a link where the folder goes, is refused, and the service
 * polls instead; nothing is made in it or changed where a link leads. The
 * directories the service makes are 1777 whatever its umask, the mode set
 * through the new directory's descriptor; inotify follows no link. The
 * race (a link swapped in between mkdir and chmod) cannot be run
 * deterministically: these pin the checks that close it.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { captureLogs } from "./helpers.ts";
import { watchChangeNotices } from "../src/daemon/change_notices.ts";
import { DirectoryWatch, IN } from "../src/daemon/directory_watch.ts";
import { makeDirectory } from "../src/store/no_follow.ts";
import { processStart } from "../src/daemon/processes.ts";
import { noticeFolder } from "../src/store/change_notice.ts";
import type { MysqlTarget } from "../src/store/target.ts";

const ROOT = Deno.uid() === 0;

const TARGET: MysqlTarget = {
  kind: "mysql",
  host: "127.0.0.1",
  port: 3306,
  user: "root",
  password: "",
  database: "notice_dirs_test",
  charset: "utf8mb4",
  poolSize: 1,
  connectTimeoutMs: 1000,
};

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** What a service told of the notice directory `setting` names: the warning, and whether it watched. */
async function refused(setting: string): Promise<string> {
  await using logs = await captureLogs("warning");
  const reports: boolean[] = [];
  const watch = await watchChangeNotices(TARGET, setting, {
    changed: () => {},
    watchedLocally: (on) => reports.push(on),
  });
  watch.stop();
  assertEquals(reports, [], "the service watched the directory");
  const warnings = logs.messages();
  assertEquals(warnings.length, 1, warnings.join("\n"));
  assertStringIncludes(warnings[0], "the service polls every reload_interval instead");
  return warnings[0];
}

Deno.test({
  name: "notice dirs: a notice directory another user owns is refused, and nothing is made in it",
  ignore: !ROOT,
  fn: async () => {
    await using dir = await tempDir();
    const base = `${dir.path}/notices`;
    await Deno.mkdir(base);
    await Deno.chmod(base, 0o1777);
    // A uid no one has: whoever made /tmp/jobsmanager-notices first.
    await Deno.chown(base, 4242, 4242);
    const warning = await refused(base);
    assertStringIncludes(
      warning,
      `${base} is owned by uid 4242, not by root, who could swap what it holds: remove it (rm -r ${base}; the service makes it again)`,
    );
    assertEquals([...Deno.readDirSync(base)], []);
  },
});

Deno.test("notice dirs: a notice directory others may write in, not sticky, is refused, and nothing is made in it", async () => {
  await using dir = await tempDir();
  const base = `${dir.path}/notices`;
  await Deno.mkdir(base);
  await Deno.chmod(base, 0o777);
  const warning = await refused(base);
  assertStringIncludes(
    warning,
    `${base} is writable by others but not sticky (mode 0777), so they could swap what it holds: chmod +t ${base}`,
  );
  assertEquals([...Deno.readDirSync(base)], []);
});

Deno.test("notice dirs: a link where the folder goes is not followed, and what it names keeps its mode", async () => {
  await using dir = await tempDir();
  const base = `${dir.path}/notices`;
  await Deno.mkdir(base);
  await Deno.chmod(base, 0o1777);
  const victim = `${dir.path}/victim`;
  await Deno.writeTextFile(victim, "secret", { mode: 0o600 });
  const folder = `${base}/${await noticeFolder(TARGET)}`;
  await Deno.symlink(victim, folder);
  const warning = await refused(base);
  assertStringIncludes(warning, `${folder} is a symbolic link, which is not followed`);
  assertEquals((await Deno.stat(victim)).mode! & 0o7777, 0o600);
});

Deno.test("notice dirs: inotify watches no directory through a link, and no file", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/real`);
  await Deno.symlink(`${dir.path}/real`, `${dir.path}/link`);
  await Deno.writeTextFile(`${dir.path}/file`, "");
  for (const path of [`${dir.path}/link`, `${dir.path}/file`]) {
    let watch: DirectoryWatch | null = null;
    try {
      watch = DirectoryWatch.start(path, IN.CREATE, () => {});
    } catch (error) {
      assertStringIncludes((error as Error).message, `inotify_add_watch on ${path} failed`);
    }
    if (watch !== null) {
      watch.close();
      await watch.ended;
      assert(false, `${path} was watched`);
    }
  }
});

Deno.test("notice dirs: a directory made for notices is 1777 whatever the umask", async () => {
  await using dir = await tempDir();
  const umask = Deno.umask(0o077);
  try {
    makeDirectory(`${dir.path}/made`, 0o1777);
  } finally {
    Deno.umask(umask);
  }
  const info = await Deno.lstat(`${dir.path}/made`);
  assert(info.isDirectory);
  assertEquals(info.mode! & 0o7777, 0o1777);
});

/** A notice directory as the service makes it: 1777, in a temporary directory. */
async function noticeBase(dir: { path: string }): Promise<string> {
  const base = `${dir.path}/notices`;
  await Deno.mkdir(base);
  await Deno.chmod(base, 0o1777);
  return base;
}

/** A service's watch of `base` for TARGET, and the notices it heard. */
async function watching(base: string) {
  const heard = { notices: 0 };
  const watch = await watchChangeNotices(TARGET, base, {
    changed: () => heard.notices++,
    watchedLocally: () => {},
  });
  return { watch, heard };
}

/** Resolves once `done()`, or fails after 10 s saying `what` and the state. */
async function until(done: () => boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not after 10 s: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("notice dirs: a service stopped removes its folder, not the notice directory", async () => {
  await using dir = await tempDir();
  const base = await noticeBase(dir);
  const folder = `${base}/${await noticeFolder(TARGET)}`;
  const { watch } = await watching(base);
  assert((await Deno.lstat(folder)).isDirectory, "the folder was not made");
  watch.stop();
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name), [], "left in the notice directory");
});

Deno.test("notice dirs: a folder another service on the database watches is left to it, and removed by the last", async () => {
  await using dir = await tempDir();
  const base = await noticeBase(dir);
  const folder = `${base}/${await noticeFolder(TARGET)}`;
  await using logs = await captureLogs("info");
  const first = await watching(base);
  const second = await watching(base);
  first.watch.stop();
  assert((await Deno.lstat(folder)).isDirectory, "the folder was removed under the second");
  Deno.writeTextFileSync(`${folder}/notice`, "");
  Deno.removeSync(`${folder}/notice`);
  await until(() => second.heard.notices > 0, () => "the second service heard no notice");
  assertEquals(logs.messages().filter((m) => m.includes("again")), [], "it watched again");
  second.watch.stop();
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name), [], "left in the notice directory");
});

Deno.test("notice dirs: a folder that holds a file when its service stops is left as it is", async () => {
  await using dir = await tempDir();
  const base = await noticeBase(dir);
  const folder = `${base}/${await noticeFolder(TARGET)}`;
  const { watch } = await watching(base);
  Deno.writeTextFileSync(`${folder}/kept`, "");
  watch.stop();
  assertEquals([...Deno.readDirSync(folder)].map((e) => e.name), ["kept"]);
});

Deno.test("notice dirs: a folder removed under its service (a /tmp cleaner) is made and watched again, and removed at its stop", async () => {
  await using dir = await tempDir();
  const base = await noticeBase(dir);
  const folder = `${base}/${await noticeFolder(TARGET)}`;
  await using logs = await captureLogs("info");
  const { watch, heard } = await watching(base);
  Deno.removeSync(folder, { recursive: true });
  await until(
    () => logs.messages().some((m) => m.startsWith(`watching ${folder} again`)),
    () => `the folder was not watched again: ${logs.messages().join("\n")}`,
  );
  Deno.writeTextFileSync(`${folder}/notice`, "");
  Deno.removeSync(`${folder}/notice`);
  await until(() => heard.notices > 0, () => "no notice was heard in the folder made again");
  watch.stop();
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name), [], "left in the notice directory");
});

Deno.test("notice dirs: markers killed services left are removed, a live service's kept: the last live service removes the folder", async () => {
  await using dir = await tempDir();
  const base = await noticeBase(dir);
  const folder = `${base}/${await noticeFolder(TARGET)}`;
  // A service killed (its pid now no process's), and one whose pid a later process took.
  const ended = new Deno.Command("true").spawn();
  await ended.status;
  const thisStart = processStart(Deno.pid)!;
  const orphans = [`.service-${ended.pid}-1-a`, `.service-${Deno.pid}-${thisStart + 1}-b`];
  await Deno.mkdir(folder);
  for (const name of orphans) Deno.writeTextFileSync(`${folder}/${name}`, "");
  const { watch } = await watching(base);
  watch.stop();
  assertEquals([...Deno.readDirSync(base)].map((e) => e.name), [], "left in the notice directory");

  // A service that runs (its pid and start): its marker stays, and so does the folder.
  const live = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" }).spawn();
  try {
    const marker = `.service-${live.pid}-${processStart(live.pid)}-c`;
    await Deno.mkdir(folder);
    Deno.writeTextFileSync(`${folder}/${marker}`, "");
    const second = await watching(base);
    second.watch.stop();
    assertEquals([...Deno.readDirSync(folder)].map((e) => e.name), [marker]);
  } finally {
    live.kill();
    await live.status;
  }
});
