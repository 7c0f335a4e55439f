# A single-node Slurm cluster on loopback for the Slurm executor's tests, sourced by
# .ci/run: installs Debian's slurm-wlm if missing, starts slurmctld and slurmd (as
# root) with a config under a temporary folder, waits for the node to be idle, exports
# SLURM_CONF, and stops the daemons when the sourcing shell exits (jobs drained first).
# auth/none and cred/none: no munge daemon; insecure, so for a loopback CI cluster only.

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null
fi

slurm_dir="$(mktemp -d "${TMPDIR:-/tmp}/reasongen-slurm.XXXXXX")"
mkdir -p "$slurm_dir"/spool/ctld "$slurm_dir"/spool/d "$slurm_dir"/log "$slurm_dir"/run
slurm_cpus="$(nproc)"
slurm_mem_mb="$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)"
cat >"$slurm_dir/slurm.conf" <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$slurm_dir/spool/ctld
SlurmdSpoolDir=$slurm_dir/spool/d
SlurmctldPidFile=$slurm_dir/run/slurmctld.pid
SlurmdPidFile=$slurm_dir/run/slurmd.pid
SlurmctldLogFile=$slurm_dir/log/slurmctld.log
SlurmdLogFile=$slurm_dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$slurm_cpus RealMemory=$slurm_mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$slurm_dir/slurm.conf"

/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost
for _ in $(seq 1 300); do
    sinfo -h -o %T 2>/dev/null | grep -q idle && break
    sleep 0.1
done
sinfo -h -o %T | grep -q idle || { echo "slurm: the node never became idle; see $slurm_dir/log" >&2; exit 1; }

# Drain, then stop: a job still running when the daemons go leaves a slurmstepd
# that ignores SIGTERM.
reasongen_slurm_stop() {
    scancel --full --user=root 2>/dev/null || true
    for _ in $(seq 1 100); do
        [ -z "$(squeue -h -t pending,running,completing 2>/dev/null)" ] && break
        sleep 0.1
    done
    local pids=""
    for pid_file in "$slurm_dir/run/slurmd.pid" "$slurm_dir/run/slurmctld.pid"; do
        [ -f "$pid_file" ] && pids="$pids $(cat "$pid_file")"
    done
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    # Wait for them to go, so that the ports are free for the next cluster.
    for _ in $(seq 1 100); do
        local alive=""
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    rm -rf "$slurm_dir"
}
# Keep whatever EXIT trap an earlier script set (the moto server's).
slurm_prev_trap="$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")"
trap "reasongen_slurm_stop; ${slurm_prev_trap:-:}" EXIT

# With this set, the Slurm tests fail rather than skip when Slurm is missing.
export REASONGEN_REQUIRE_SLURM=1
