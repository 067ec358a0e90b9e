#!/usr/bin/env bash
# A single-node SLURM on this machine (localhost only), for the tests and for trying
# `launcher=slurm` on a laptop: munged, slurmctld and slurmd from Debian's slurm-wlm and munge.
# Needs root. Idempotent: a running cluster is left as it is.
#   sudo launchers/slurm_local.sh            # install if needed, configure, start
#   sudo launchers/slurm_local.sh --stop     # stop the daemons
set -euo pipefail

CONF_DIR=/etc/slurm
NODE=$(hostname -s)

if [ "${1:-}" = "--stop" ]; then
    pkill -x slurmd || true
    pkill -x slurmctld || true
    pkill -x munged || true
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key and a running daemon
mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge
chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
# --force: a munged killed earlier leaves its socket and pid file behind
munge_ok || runuser -u munge -- /usr/sbin/munged --force
for _ in $(seq 1 20); do  # slurmctld dies at start if munge cannot vouch for it yet
    munge_ok && break
    sleep 0.5
done

# slurm.conf: one node with this machine's cores and memory, no accounting
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=musweep
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# -r: a killed daemon may linger as a zombie, which must not count as running
pgrep -r R,S,D -x slurmctld >/dev/null || slurmctld
pgrep -r R,S,D -x slurmd >/dev/null || slurmd

# wait until the node takes jobs
for _ in $(seq 1 30); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        sinfo
        exit 0
    fi
    sleep 1
done
echo "slurm did not come up; see /var/log/slurm/" >&2
sinfo || true
exit 1
