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
Documentation=https://github.com/kylechenoO/JobsManager
Wants=network-online.target
After=network-online.target mariadb.service mysql.service

[Service]
Type=exec
ExecStart=/usr/local/bin/jobsmanager serve
# SIGHUP reloads every job at once, without a restart.
ExecReload=/bin/kill -HUP $MAINPID
EnvironmentFile=-/etc/jobsmanager/env
WorkingDirectory=/var/lib/jobsmanager
StateDirectory=jobsmanager
LogsDirectory=jobsmanager
Environment=JM_LOG_PATH=/var/log/jobsmanager
Restart=on-failure
RestartSec=5s
# SIGTERM: running jobs get jobsmanager.shutdown_timeout (${shutdown} s) to finish, then
# their groups get SIGTERM and, after jobsmanager.kill_grace (${grace} s), SIGKILL; the
# service exits within ${budget} s, even with the database unreachable. systemd's limit
# stays ${SYSTEMD_STOP_HEADROOM_S} s above that: raise both together.
KillMode=mixed
TimeoutStopSec=${budget + SYSTEMD_STOP_HEADROOM_S}s
# Jobs are arbitrary shell commands: give them a private /tmp and keep the
# system read-only except where the scheduler writes. Loosen ReadWritePaths
# for what your jobs write. No NoNewPrivileges or syscall filters, which would
# break jobs that use sudo or unusual syscalls.
User=jobsmanager
Group=jobsmanager
PrivateTmp=true
ProtectSystem=full
ProtectHome=read-only
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
LimitNOFILE=65536
TasksMax=infinity

[Install]
WantedBy=multi-user.target
`;
}
