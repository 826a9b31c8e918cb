/**
 * The arguments as the user typed them. Deno reads each argument as UTF-8,
 * making U+FFFD of bytes that are not, and drops one trailing carriage
 * return from each (denoland/deno#34968, for scripts saved with CRLF
 * shebangs): `--command $'echo x\r'` would store `echo x` where the API and
 * jobs files keep the `\r`. The kernel's copy of the command line has the
 * bytes as typed: its last entries are the program's arguments.
 */

export interface ProgramArgs {
  args: string[];
  /**
   * Whether each argument was typed in UTF-8; false where bytes that are not
   * became U+FFFD (where the command line cannot be read, whether it holds
   * U+FFFD at all: a U+FFFD typed as such cannot be told apart then).
   */
  utf8: boolean[];
}

/** Where no command line tells: an argument holding U+FFFD may have been other bytes. */
export function lossy(args: string[]): ProgramArgs {
  return { args, utf8: args.map((arg) => !arg.includes("\uFFFD")) };
}

const strict = new TextDecoder("utf-8", { fatal: true });

/**
 * `args` (as Deno read them) checked against `cmdline` (the process's
 * whole argv, as bytes): each carriage return Deno dropped put back, and
 * each argument that was not UTF-8 marked; `lossy(args)` when the two do
 * not line up in every other respect.
 */
export function typedArgs(args: string[], cmdline: Uint8Array[]): ProgramArgs {
  if (cmdline.length < args.length) return lossy(args);
  const typed = cmdline.slice(cmdline.length - args.length);
  const restored: string[] = [];
  const utf8: boolean[] = [];
  for (const [i, arg] of args.entries()) {
    let text: string;
    try {
      text = strict.decode(typed[i]);
    } catch {
      // Deno's reading of it, U+FFFD for each byte that is not UTF-8, stands.
      if (new TextDecoder().decode(typed[i]).replace(/\r$/, "") !== arg.replace(/\r$/, "")) {
        return lossy(args);
      }
      restored.push(arg);
      utf8.push(false);
      continue;
    }
    if (text !== arg && text !== `${arg}\r`) return lossy(args);
    restored.push(text);
    utf8.push(true);
  }
  return { args: restored, utf8 };
}

/** `/proc/self/cmdline` split into arguments, or null where it cannot be read (not Linux). */
function kernelArgv(): Uint8Array[] | null {
  let raw: Uint8Array;
  try {
    raw = Deno.readFileSync("/proc/self/cmdline");
  } catch {
    return null;
  }
  if (raw.at(-1) !== 0) return null;
  const argv: Uint8Array[] = [];
  for (let from = 0; from < raw.length;) {
    const end = raw.indexOf(0, from);
    argv.push(raw.subarray(from, end));
    from = end + 1;
  }
  return argv;
}

/** The program's arguments as typed, where Linux's copy of the command line tells. */
export function programArgs(): ProgramArgs {
  const argv = kernelArgv();
  return argv === null ? lossy(Deno.args) : typedArgs(Deno.args, argv);
}
