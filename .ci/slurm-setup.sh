#!/usr/bin/env bash
# A single-node SLURM on localhost (munge + slurmctld + slurmd, Debian's slurm-wlm, with job
# accounting in slurmdbd on MariaDB so that sacct answers) for the tests of greenai's SLURM
# identity and `greenai reconcile` (tests/distributed/test_slurm_real.py).
# Idempotent: installs what is missing, writes the config once, starts the daemons that are not
# running, and waits until the node takes jobs. Runs as root (CI and the dev containers are
# root; the daemons run as root too: a container has no systemd to hand them to).
set -euo pipefail

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v srun >/dev/null \
    || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        slurm-wlm slurm-client slurmdbd munge mariadb-server
fi

node="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
conf=/etc/slurm/slurm.conf
dbd=/etc/slurm/slurmdbd.conf

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# Stop the daemon of a pid file and wait (up to 30 s) until it has exited.
stop() {
    running "$1" || return 0
    local pid; pid="$(cat "$1")"
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    $SUDO kill -9 "$pid" 2>/dev/null || true
}

$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mkdir -p /etc/munge
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
$SUDO chmod 0400 /etc/munge/munge.key
$SUDO chmod 0755 /run/munge

# The config names this host: rewrite it when the host (or the CPU count) changed.
want="# greenai-ci node=${node} cpus=${cpus} accounting=slurmdbd"
if ! head -1 "$conf" 2>/dev/null | grep -qxF "$want"; then
    $SUDO tee "$conf" >/dev/null <<EOF
${want}
ClusterName=greenai-ci
SlurmctldHost=${node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# A container: no cgroup plugins, no systemd; processes are tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=${node} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    # A new config: daemons started with the old one must go.
    stop /run/slurmd.pid
    stop /run/slurmctld.pid
fi

if ! pgrep -x munged >/dev/null; then
    $SUDO runuser -u munge -- /usr/sbin/munged
fi

# Job accounting: MariaDB, then slurmdbd, then this cluster registered in it.
if ! pgrep -x mariadbd >/dev/null; then
    $SUDO mkdir -p /run/mysqld
    $SUDO chown mysql:mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        $SUDO mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    $SUDO setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
        --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
        >>/var/log/slurm/mariadb.log 2>&1 </dev/null &
fi
for _ in $(seq 60); do $SUDO mariadb -e "select 1" >/dev/null 2>&1 && break; sleep 1; done
$SUDO mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
if [ ! -s "$dbd" ] || ! grep -q "^StorageLoc=slurm_acct_db" "$dbd"; then
    printf '%s\n' "AuthType=auth/munge" "DbdHost=localhost" "SlurmUser=root" \
        "StorageType=accounting_storage/mysql" "StorageHost=localhost" "StorageUser=slurm" \
        "StoragePass=slurm" "StorageLoc=slurm_acct_db" "PidFile=/run/slurmdbd.pid" \
        "LogFile=/var/log/slurm/slurmdbd.log" | $SUDO tee "$dbd" >/dev/null
fi
$SUDO chmod 600 "$dbd"
if ! running /run/slurmdbd.pid; then
    $SUDO /usr/sbin/slurmdbd
fi
for _ in $(seq 60); do sacctmgr -n list cluster format=cluster >/dev/null 2>&1 && break; sleep 1; done
if ! sacctmgr -n list cluster format=cluster 2>/dev/null | grep -qw greenai-ci; then
    $SUDO sacctmgr -i add cluster greenai-ci >/dev/null
    # slurmctld registers with slurmdbd as it starts: restart it once the cluster exists.
    stop /run/slurmctld.pid
fi

if ! running /run/slurmctld.pid; then
    $SUDO /usr/sbin/slurmctld
fi
if ! running /run/slurmd.pid; then
    $SUDO /usr/sbin/slurmd
fi

# Wait (up to 90 s) until the node is idle and a job runs.
deadline=$((SECONDS + 90))
while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(timeout 5 sinfo -h -n "$node" -o '%T' 2>/dev/null || true)"
    case "$state" in
        idle*|mixed*|allocated*) break ;;
        down*|drain*) $SUDO scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
if ! timeout 60 srun -N1 -n1 -t 1 true; then
    echo "slurm-setup: srun does not run jobs; see /var/log/slurm/" >&2
    timeout 10 sinfo >&2 || true
    exit 1
fi
if ! timeout 30 sacct -n -X -o JobID >/dev/null 2>&1; then
    echo "slurm-setup: sacct does not answer (slurmdbd); see /var/log/slurm/slurmdbd.log" >&2
    exit 1
fi
echo "slurm-setup: ${node} takes jobs ($(sinfo -h -o '%T' -n "$node")), with accounting"
