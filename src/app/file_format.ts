/**
 * The formats of a jobs file (`export`, `apply`), apart from the parsers
 * in jobs_file.ts, so that the CLI lists them without loading those.
 */
export type FileFormat = "json5" | "yaml";
export const FILE_FORMATS: readonly FileFormat[] = ["json5", "yaml"];
