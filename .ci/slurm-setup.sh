#!/usr/bin/env bash
# A single-node SLURM on localhost (munge + slurmctld + slurmd, Debian's slurm-wlm) for the
# tests of greenai's SLURM identity and `greenai reconcile` (tests/distributed/test_slurm_real.py).
# Idempotent: installs what is missing, writes the config once, starts the daemons that are not
# running, and waits until the node takes jobs. Runs as root (CI and the dev containers are
# root; the daemons run as root too: a container has no systemd to hand them to).
set -euo pipefail

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v srun >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm slurm-client munge
fi

node="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
conf=/etc/slurm/slurm.conf

$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mkdir -p /etc/munge
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
$SUDO chmod 0400 /etc/munge/munge.key
$SUDO chmod 0755 /run/munge

# The config names this host: rewrite it when the host (or the CPU count) changed.
want="# greenai-ci node=${node} cpus=${cpus}"
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
AccountingStorageType=accounting_storage/none
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
    if [ -s /run/slurmd.pid ]; then $SUDO kill "$(cat /run/slurmd.pid)" 2>/dev/null || true; fi
    if [ -s /run/slurmctld.pid ]; then $SUDO kill "$(cat /run/slurmctld.pid)" 2>/dev/null || true; fi
    sleep 1
fi

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! pgrep -x munged >/dev/null; then
    $SUDO runuser -u munge -- /usr/sbin/munged
fi
if ! running /run/slurmctld.pid; then
    $SUDO /usr/sbin/slurmctld
fi
if ! running /run/slurmd.pid; then
    $SUDO /usr/sbin/slurmd
fi

# Wait (up to 60 s) until the node is idle and a job runs.
for _ in $(seq 60); do
    state="$(sinfo -h -n "$node" -o '%T' 2>/dev/null || true)"
    case "$state" in
        idle*|mixed*|allocated*) break ;;
        down*|drain*) $SUDO scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
if ! timeout 60 srun -N1 -n1 -t 1 true; then
    echo "slurm-setup: srun does not run jobs; see /var/log/slurm/" >&2
    sinfo >&2 || true
    exit 1
fi
echo "slurm-setup: ${node} takes jobs ($(sinfo -h -o '%T' -n "$node"))"
