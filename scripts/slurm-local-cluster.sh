#!/usr/bin/env bash
# Start (default) or stop a single-node SLURM cluster on this machine, for the SLURM tests.
# Needs root. Installs Debian's slurm-wlm and munge when missing; safe to run again.
#   bash scripts/slurm-local-cluster.sh          # start, wait until the node is idle
#   bash scripts/slurm-local-cluster.sh stop
set -euo pipefail
action=${1:-start}
state_dir=/var/spool/slurmctld
spool_dir=/var/spool/slurmd
log_dir=/var/log/slurm

if [ "$action" = stop ]; then
    pkill -x slurmd || true
    pkill -x slurmctld || true
    echo "slurm-local-cluster: stopped"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "slurm-local-cluster: needs root (it installs packages and starts daemons)" >&2
    exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-local-cluster: installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p /etc/slurm "$state_dir" "$spool_dir" "$log_dir" /run/munge
host=$(hostname -s)
# The node line as slurmd sees the hardware, with some memory left for the OS.
hardware=$(slurmd -C | head -n 1)
memory=$(grep -o 'RealMemory=[0-9]*' <<<"$hardware" | cut -d= -f2)
hardware=${hardware/RealMemory=$memory/RealMemory=$((memory * 9 / 10))}
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=gradienthide-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state_dir
SlurmdSpoolDir=$spool_dir
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MinJobAge=86400
ReturnToService=2
$hardware State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 60); do
    node_state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case "$node_state" in
        idle*|mixed*|allocated*) echo "slurm-local-cluster: node $host is $node_state"; exit 0 ;;
        down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "slurm-local-cluster: node $host did not become idle within 60 s (state: ${node_state:-none});" \
     "see $log_dir/slurmctld.log and $log_dir/slurmd.log" >&2
exit 1
