/** The release, from deno.json (embedded at build time, never read from disk). */
import manifest from "../deno.json" with { type: "json" };

export const VERSION: string = manifest.version;
