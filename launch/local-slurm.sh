# Sourced, not run: slurm_start DIR starts a single-node Slurm (munge, slurmctld,
# slurmd) with its state under DIR, and exports SLURM_CONF; slurm_stop stops it.
# The multi-host tests build a 2-node Slurm from the same parts
# (tests/multinode/hosts.sh).
# On failure slurm_start returns 1 with the reason in SLURM_WHY. Used by the srun
# launcher test; see shared notes "local-slurm" for the set-up it follows.

slurm_start() {
  local dir=$1
  SLURM_WHY=""
  slurm_prepare "$dir" || return 1
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  slurm_conf "$dir" "$host" >"$dir/slurm.conf"
  cat >>"$dir/slurm.conf" <<CONF
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
SlurmdLogFile=$dir/slurmd.log
NodeName=$host CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$(slurm_memory) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld || { SLURM_WHY="slurmctld did not start (see $dir/slurmctld.log)"; return 1; }
  slurmd || { SLURM_WHY="slurmd did not start (see $dir/slurmd.log)"; slurm_stop; return 1; }
  local i
  for i in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed)'; then return 0; fi
    sleep 0.5
  done
  SLURM_WHY="the node never became idle: $(sinfo -h 2>&1 | head -n 1)"
  slurm_stop
  return 1
}

# slurm_prepare DIR: root, the binaries, a working munge, DIR/state; sets
# SLURM_DIR (for slurm_stop).
slurm_prepare() {
  local dir=$1 b
  for b in slurmctld slurmd srun sinfo munged munge unmunge; do
    command -v "$b" >/dev/null || { SLURM_WHY="$b is not installed"; return 1; }
  done
  [[ $(id -u) == 0 ]] || { SLURM_WHY="starting slurmd needs root"; return 1; }
  mkdir -p "$dir/spool" "$dir/state"
  SLURM_DIR=$dir
  # A working munge daemon is one that signs and verifies a credential.
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    su -s /bin/sh munge -c "munged --force" || { SLURM_WHY="munged did not start"; return 1; }
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || { SLURM_WHY="munge does not verify credentials"; return 1; }
    SLURM_STARTED_MUNGE=1
  fi
}

# slurm_conf DIR CONTROLLER: the settings every node shares (no nodes, no slurmd paths).
slurm_conf() {
  cat <<CONF
ClusterName=tandemtest
SlurmctldHost=$2
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldPidFile=$1/slurmctld.pid
StateSaveLocation=$1/state
SlurmctldLogFile=$1/slurmctld.log
SlurmUser=root
SlurmdUser=root
MpiDefault=none
ReturnToService=2
CONF
}

# MiB a node may offer: 80 % of this machine's memory.
slurm_memory() { awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo; }

slurm_stop() {
  local f
  for f in "$SLURM_DIR/slurmd.pid" "$SLURM_DIR/slurmctld.pid"; do
    [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null
  done
  if [[ ${SLURM_STARTED_MUNGE:-0} == 1 ]]; then pkill -x munged 2>/dev/null; fi
  sleep 1
  return 0
}
