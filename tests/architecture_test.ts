/**
 * The import direction: `cli → http → app | daemon → config → store → domain → cron`
 * (the CLI's `serve` hosts the HTTP side; nothing below imports either),
 * with `errors.ts` and `version.ts` as leaves every layer may use. Read from
 * `deno info --json`, so a new import against the direction fails here.
 */
import { assertEquals } from "./assert.ts";

const SRC = new URL("../src/", import.meta.url);

/** What each layer may import besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  "main.ts": ["cli"],
  cli: ["http", "app", "daemon", "config", "store", "domain", "cron", "base"],
  http: ["app", "daemon", "config", "store", "domain", "cron", "base"],
  app: ["config", "store", "domain", "cron", "base"],
  daemon: ["config", "store", "domain", "cron", "base"],
  config: ["store", "domain", "cron", "base"],
  store: ["domain", "cron", "base"],
  domain: ["cron", "base"],
  cron: ["base"],
  base: [],
};

function layerOf(path: string): string {
  if (path === "errors.ts" || path === "version.ts") return "base";
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

interface Module {
  specifier: string;
  /** `code` for value imports, `type` for `import type`: both are dependencies. */
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

async function imports(): Promise<[string, string][]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("main.ts", SRC).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const modules: Module[] = JSON.parse(new TextDecoder().decode(out.stdout)).modules;
  const local = (specifier: string) =>
    specifier.startsWith(SRC.href) ? specifier.slice(SRC.href.length) : null;
  const edges: [string, string][] = [];
  for (const m of modules) {
    const from = local(m.specifier);
    if (from === null) continue;
    for (const dep of m.dependencies ?? []) {
      for (const resolved of [dep.code, dep.type]) {
        const to = resolved ? local(resolved.specifier) : null;
        if (to !== null) edges.push([from, to]);
      }
    }
  }
  return edges;
}

Deno.test("every import in src/ points down the layers", async () => {
  const edges = await imports();
  const against = edges.filter(([from, to]) => {
    const [a, b] = [layerOf(from), layerOf(to)];
    return a !== b && !ALLOWED[a]?.includes(b);
  }).map(([from, to]) => `${from} → ${to}`);
  assertEquals(against, []);
});

Deno.test("the layer check sees the whole program", async () => {
  const layers = new Set((await imports()).flat().map(layerOf));
  for (const layer of ["cli", "http", "app", "daemon", "store", "domain", "cron", "config"]) {
    assertEquals(layers.has(layer), true, `no module of ${layer}/ reached from main.ts`);
  }
});

Deno.test("no two modules of src/ import each other, directly or around a loop", async () => {
  const next = new Map<string, string[]>();
  for (const [from, to] of await imports()) next.set(from, [...next.get(from) ?? [], to]);
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (module: string, path: string[]) => {
    state.set(module, "open");
    for (const to of next.get(module) ?? []) {
      const loop = [...path, module];
      if (state.get(to) === "open") cycles.push([...loop.slice(loop.indexOf(to)), to].join(" → "));
      else if (!state.has(to)) visit(to, [...path, module]);
    }
    state.set(module, "done");
  };
  for (const module of next.keys()) if (!state.has(module)) visit(module, []);
  assertEquals(cycles, []);
});

Deno.test("commands start without the service, HTTP, YAML, mysql2 or Node's modules: those load when a command needs them", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("main.ts", SRC).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const modules: (Module & { dependencies?: { isDynamic?: boolean }[] })[] =
    JSON.parse(new TextDecoder().decode(out.stdout)).modules;
  const byId = new Map(modules.map((m) => [m.specifier, m]));
  const loaded = new Set<string>();
  const visit = (specifier: string) => {
    if (loaded.has(specifier)) return;
    loaded.add(specifier);
    for (const dep of byId.get(specifier)?.dependencies ?? []) {
      if (!dep.isDynamic && dep.code) visit(dep.code.specifier);
    }
  };
  visit(new URL("main.ts", SRC).href);
  const packages = [...loaded].filter((s) => s.startsWith("npm:"))
    .map((s) => s.replace(/^npm:\/?(@?[^@/]+(?:\/[^@/]+)?)@.*$/, "$1")).sort();
  assertEquals(packages, ["@humanwhocodes/momoa", "@stricli/core", "croner"]);
  // The first Node module (node:path, node:fs, …) loads Deno's Node layer:
  // 15-50 ms more at every start, as a CommonJS package does (momoa, which
  // reads the config file, is an ES module). node:sqlite is the database itself.
  assertEquals([...loaded].filter((s) => s.startsWith("node:")), ["node:sqlite"]);
  const local = [...loaded].filter((s) => s.startsWith(SRC.href)).map((s) =>
    s.slice(SRC.href.length)
  );
  assertEquals(local.filter((m) => m.startsWith("http/") || m === "daemon/boot.ts"), []);
});
