/**
 * The arguments as the user typed them. Deno drops one trailing carriage
 * return from each argument (denoland/deno#34968, for scripts saved with
 * CRLF shebangs), so `--command $'echo x\r'` would store `echo x` where the
 * API and jobs files keep the `\r`. The kernel's copy of the command line
 * has them: its last entries are the program's arguments.
 */

/**
 * `args` with each carriage return Deno dropped put back, from `cmdline`
 * (the process's whole argv); `args` as they are when the two do not line
 * up in every other respect.
 */
export function restoreCarriageReturns(args: string[], cmdline: string[]): string[] {
  if (cmdline.length < args.length) return args;
  const typed = cmdline.slice(cmdline.length - args.length);
  const restored = args.map((arg, i) => typed[i] === `${arg}\r` ? typed[i] : arg);
  return restored.every((arg, i) => arg === typed[i]) ? restored : args;
}

/** `/proc/self/cmdline` as argv, or null where it cannot be read (not Linux, no /proc). */
function kernelArgv(): string[] | null {
  try {
    const raw = Deno.readFileSync("/proc/self/cmdline");
    const text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
    return text.endsWith("\0") ? text.slice(0, -1).split("\0") : null;
  } catch {
    return null;
  }
}

/** The program's arguments, with the carriage returns Deno dropped put back where Linux has them. */
export function programArgs(): string[] {
  const argv = kernelArgv();
  return argv === null ? Deno.args : restoreCarriageReturns(Deno.args, argv);
}
