/** How a run's command is handed to /bin/sh (domain/shell.ts execForm). */
import { execForm } from "../src/domain/shell.ts";
import { assertEquals } from "./assert.ts";

Deno.test("execForm: a plain command, its words and redirections, is exec'd; anything the shell reads otherwise is left to it", () => {
  const execd = [
    "date +%s%3N",
    "/usr/local/bin/backup.sh --full",
    "report --month",
    "php artisan schedule:run",
    "dd if=/dev/zero of=/tmp/x count=1",
    "date >> /tmp/tick",
    "cmd >>/var/log/x 2>&1",
    "cmd < in.txt 2>/dev/null 3>&-",
    "\t sleep 5 ",
    "./relative/script a,b user@host:path",
  ];
  for (const command of execd) assertEquals(execForm(command), `exec ${command}`, command);
  const left = [
    // The shell's own names: exec would run a program of that name, or none.
    "true",
    "echo hi",
    "printf x",
    "kill -l",
    "test -f x",
    ". /etc/profile",
    ": nothing",
    "cd /tmp",
    "exec date",
    "time ls",
    "if",
    // An assignment, an option, quotes, expansions, globs, a tilde, operators, a comment, lines.
    "A=1 cmd",
    "-x",
    "cmd 'a b'",
    'cmd "a"',
    "cmd a\\ b",
    "cmd $HOME",
    "cmd `x`",
    "cmd *",
    "cmd ?",
    "cmd [ab]",
    "~/bin/x",
    "cmd ~",
    "cmd; other",
    "cmd && other",
    "cmd || other",
    "cmd | other",
    "cmd &",
    "(cmd)",
    "{ cmd; }",
    "cmd # note",
    "cmd\nother",
    "cmd 10>x",
    "cmd>x",
    "cmd >",
    "cmd >& x",
    "cmd << EOF",
    "cmd <> x",
    "héllo",
    "",
  ];
  for (const command of left) assertEquals(execForm(command), command, command);
});
