/**
 * The systemd unit, rendered from the config defaults so that its stop
 * timeout follows the daemon's own stop budget. `deno task generate`
 * writes systemd/jobsmanager.service; tests/generated_test.ts fails when
 * it is stale.
 */
import { defaultSettings, type Settings } from "../config/config.ts";
import { stopBudgetMs } from "./boot.ts";

/** How long systemd waits beyond the service's own stop budget before its SIGKILL. */
export const SYSTEMD_STOP_HEADROOM_S = 5;

export function renderSystemdUnit(settings: Settings = defaultSettings()): string {
  const shutdown = settings["jobsmanager.shutdown_timeout"];
  const grace = settings["jobsmanager.kill_grace"];
  const budget = Math.ceil(stopBudgetMs(settings) / 1000);
  return `# jobsmanager as a systemd service.
#   cp systemd/jobsmanager.service /etc/systemd/system/
#   systemctl daemon-reload && systemctl enable --now jobsmanager
# Config: /etc/jobsmanager/jobsmanager.json (JSON5; see etc/jobsmanager.json).
# Secrets: put JM_DB_PASSWORD=… in /etc/jobsmanager/env (mode 0600), not in the config.
[Unit]
Description=jobsmanager cron job scheduler
Documentation=file:///usr/local/share/doc/jobsmanager/README.md
Wants=network-online.target
After=network-online.target mariadb.service mysql.service

[Service]
# notify: \`systemctl start\` returns once the jobs are loaded, and fails with the start's error.
# The watchdog restarts a service whose main thread was held a minute (a hung mount, a loop
# that never yields); a database outage is waited out, not restarted.
Type=notify
NotifyAccess=main
WatchdogSec=60s
# A start after an upgrade may migrate a large log first (README, Upgrading): minutes.
TimeoutStartSec=15min
ExecStart=/usr/local/bin/jobsmanager serve
# SIGHUP reloads every job at once, without a restart.
ExecReload=/bin/kill -HUP $MAINPID
EnvironmentFile=-/etc/jobsmanager/env
WorkingDirectory=/var/lib/jobsmanager
StateDirectory=jobsmanager
LogsDirectory=jobsmanager
# /run/jobsmanager: where \`jobsmanager job …\` leaves a notice of each change to a MySQL
# database, which the service applies at once (its /tmp is its own: PrivateTmp). 1733:
# every user may leave one, only the service lists them.
RuntimeDirectory=jobsmanager
RuntimeDirectoryMode=1733
# Overrides the config's log.path (the start's log names the file and where it came from).
Environment=JM_LOG_PATH=/var/log/jobsmanager
Restart=on-failure
RestartSec=5s
# Exit 2 is a configuration error (a bad key or value, named in the journal): restarting
# every 5 s does not fix it.
RestartPreventExitStatus=2
# SIGTERM: running jobs get jobsmanager.shutdown_timeout (${shutdown} s) to finish, then
# their groups get SIGTERM and, after jobsmanager.kill_grace (${grace} s), SIGKILL; the
# service exits within ${budget} s, even with the database unreachable. systemd's limit
# stays ${SYSTEMD_STOP_HEADROOM_S} s above that: raise both together.
KillMode=mixed
TimeoutStopSec=${budget + SYSTEMD_STOP_HEADROOM_S}s
# Jobs are arbitrary shell commands, run as this user: they get a private /tmp
# and devices, a read-only /usr, /boot, /etc and home directories, and no way
# to touch the kernel, the clock or other users' processes. What the jobs
# write elsewhere (/srv, /var, /mnt) stays writable; files the service
# creates (database, logs, output) are private to its user.
# Jobs with a user (cron's user column; \`job add --user NAME\`) need the service
# run as root, which starts each as its user with setpriv (CAP_SETUID and
# CAP_SETGID, which the bounding set below keeps); run as jobsmanager, their
# runs are errors saying so. For them: \`systemctl edit jobsmanager\`, then
# [Service] User=root and Group=root; a job without a user then runs as root,
# and the HTTP API (http.listen) needs a token (JM_HTTP_TOKEN) to start.
# Home directories stay read-only to every job (ProtectHome): ProtectHome=false
# where jobs write to their user's home, as they could under cron.
User=jobsmanager
Group=jobsmanager
UMask=0077
PrivateTmp=true
PrivateDevices=true
ProtectSystem=full
ProtectHome=read-only
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
ProtectProc=invisible
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
LockPersonality=true
SystemCallArchitectures=native
SystemCallFilter=~@clock @cpu-emulation @module @obsolete @raw-io @reboot @swap
PrivateMounts=true
RemoveIPC=true
# Jobs may sudo: keep what root needs for ordinary admin work, drop the exotic.
CapabilityBoundingSet=~CAP_SYS_BOOT CAP_SYS_MODULE CAP_SYS_TIME CAP_SYS_PACCT CAP_SYS_TTY_CONFIG CAP_BPF CAP_MAC_ADMIN CAP_MAC_OVERRIDE CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_LINUX_IMMUTABLE
LimitNOFILE=65536
TasksMax=infinity
# Stricter still, for hosts whose jobs never use sudo, su or other setuid
# programs and write only under /var/lib/jobsmanager: each of these stops
# sudo (no new privileges, no capabilities to regain) or any write outside
# the state directory, which is why they are not on by default. An empty
# CapabilityBoundingSet and PrivateUsers also stop jobs with a user.
#NoNewPrivileges=true
#CapabilityBoundingSet=
#SystemCallFilter=
#SystemCallFilter=@system-service
#ProtectSystem=strict
#PrivateUsers=true

[Install]
WantedBy=multi-user.target
`;
}
