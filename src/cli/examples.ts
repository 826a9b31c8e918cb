/**
 * One or two examples for every command, shown at the end of its help.
 * Keyed by the command's path (`job add`; "" for the program itself);
 * tests/cli_help_test.ts checks that every command has its entry.
 */
export const EXAMPLES: Record<string, string[]> = {
  "": [
    "jobsmanager job add backup --command /usr/local/bin/backup.sh --cron '30 2 * * mon-fri'",
    "jobsmanager --config /etc/jobsmanager/jobsmanager.json status",
  ],
  "serve": [
    "jobsmanager serve",
    "jobsmanager --config /etc/jobsmanager/jobsmanager.json serve",
  ],
  "job": [
    "jobsmanager job list",
    "jobsmanager job add tick --command 'date >> /var/lib/jobsmanager/tick' --second '*/10'",
  ],
  "job add": [
    "jobsmanager job add backup --command /usr/local/bin/backup.sh --cron '30 2 * * mon-fri' --timezone Europe/Berlin",
    "jobsmanager job add tick --command 'date >> /var/lib/jobsmanager/tick' --second '*/10'",
  ],
  "job update": [
    "jobsmanager job update backup --timeout 600 --env TARGET=/mnt/backup",
    "jobsmanager job update backup --cron '0 3 * * *'",
  ],
  "job remove": ["jobsmanager job remove tick"],
  "job enable": ["jobsmanager job enable backup"],
  "job disable": ["jobsmanager job disable backup"],
  "job list": ["jobsmanager job list", "jobsmanager --json job list"],
  "job show": ["jobsmanager job show backup -n 10"],
  "job next": [
    "jobsmanager job next backup -n 5 --from 2026-03-27",
    "jobsmanager job next --cron '30 2 * * mon-fri' --timezone Europe/Berlin",
  ],
  "job run": [
    "jobsmanager job run backup --wait --timeout 300",
    "jobsmanager job run backup --here",
  ],
  "runs": [
    "jobsmanager runs --job backup --since 1d",
    "jobsmanager runs --status failed --limit 10",
  ],
  "runs list": ["jobsmanager runs list --job backup --status failed"],
  "runs show": ["jobsmanager runs show 42"],
  "runs cancel": ["jobsmanager runs cancel 42"],
  "logs": [
    "jobsmanager logs --job backup --since 1h",
    "jobsmanager logs --level warning --follow",
  ],
  "status": ["jobsmanager status", "jobsmanager --json status"],
  "reload": ["jobsmanager reload"],
  "db": ["jobsmanager db migrate"],
  "db migrate": [
    "jobsmanager db migrate",
    "jobsmanager --database mysql://jobs@127.0.0.1:3306/jobsmanager db migrate",
  ],
  "import": [
    'crontab -l | jobsmanager import crontab - --name "$USER"',
    "jobsmanager import apscheduler --apply",
  ],
  "import apscheduler": [
    "jobsmanager import apscheduler",
    "jobsmanager import apscheduler --from-database mysql://root@old-host:3306/workflow --apply",
  ],
  "import crontab": [
    'crontab -l | jobsmanager import crontab - --name "$USER"',
    "jobsmanager import crontab /etc/cron.d/sysstat --apply",
  ],
  "export": ["jobsmanager export > jobs.json5", "jobsmanager export --format yaml > jobs.yaml"],
  "apply": ["jobsmanager apply jobs.json5 --dry-run", "jobsmanager apply jobs.json5 --prune"],
  "completions": [
    "source <(jobsmanager completions bash)",
    "jobsmanager completions fish > ~/.config/fish/completions/jobsmanager.fish",
  ],
  "help": ["jobsmanager help job add"],
};
