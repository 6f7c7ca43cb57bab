# Sourced: fake hosts on one machine for multi-host tests. Each host is a network
# namespace (tdm1, tdm2, ...) with one veth on a bridge (tdmbr); Open MPI starts
# its daemons there through ./rsh instead of ssh and talks TCP between them, so
# every byte between hosts crosses a veth, as between real nodes.
#
#   mn_up N           create hosts tdm1..tdmN (10.231.7.1..N/24) and tdm0 (.254),
#                     the login node where mpirun runs
#   mn_down           remove them: kill what runs inside (by PID), delete the
#                     namespaces, veths and bridge (also after a crash: idempotent)
#   mn_mpirun ARGS    launch/mpirun.sh across the hosts (TCP only, our subnet)
#   mn_train DIR CONFIG HOST:SLOTS... -- OPTIONS   tandem train across hosts
#   mn_link HOST down|up   take a host's link down or up
#   mn_delay HOST MS [LOSS%]  add MS each way (+ loss) to HOST's link until mn_undelay
#   mn_kill_host HOST kill -9 every process in HOST (the host dies)
#
# The namespaces get no default route and forwarding is not touched, so nothing
# reaches past 10.231.7.0/24. mn_require skips (exit 77) with the reason where
# namespaces cannot be made.
MN_NET=10.231.7
MN_BR=tdmbr
MN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MN_HOSTS=0

mn_require() {
  local why=""
  # One set of hosts per machine: another test or benchmark using them goes first.
  exec {MN_LOCK}>"${TMPDIR:-/tmp}/tandem-multinode.lock"
  flock -w 1200 "$MN_LOCK" || { echo "skipped: the namespace hosts stayed busy for 20 min"; exit 77; }
  ip netns del tdmprobe 2>/dev/null || true  # what a killed probe left
  ip link del tdmprobebr 2>/dev/null || true
  if [[ $(id -u) != 0 ]]; then why="namespace hosts need root (CAP_NET_ADMIN)"
  elif ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then why="ip or unshare is not installed"
  elif ! ip netns add tdmprobe 2>/dev/null; then why="cannot create a network namespace here"
  elif ! ip link add tdmprobebr type bridge 2>/dev/null; then why="cannot create a bridge here"; ip netns del tdmprobe
  else ip link del tdmprobebr; ip netns del tdmprobe
  fi
  if [[ -n $why ]]; then echo "skipped: $why"; exit 77; fi
  if ip -br addr | grep -q "$MN_NET\."; then
    echo "skipped: $MN_NET.0/24 is already in use on this machine"; exit 77
  fi
}

# mn_test N: a test's start: skips without MPI or namespaces, makes N hosts that
# the test's exit removes (with its work directory, and Slurm if it started one),
# and pins the summation order so runs can be compared bit for bit (see
# tests/CMakeLists.txt).
mn_test() {
  [[ $WITH_MPI == 1 ]] || { echo "skipped: built without MPI"; exit 77; }
  mn_require
  trap 'mn_down; [[ -z ${SLURM_DIR:-} ]] || slurm_stop; [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"' EXIT
  mn_up "$1"
  export OMPI_MCA_coll_tuned_use_dynamic_rules=1 OMPI_MCA_coll_tuned_allreduce_algorithm=3 \
    OMPI_MCA_coll_libnbc_iallreduce_algorithm=4
}

mn_up() {
  local n=$1 i ns
  mn_down_n 8 >/dev/null 2>&1 || true  # what a killed earlier run (of up to 8 hosts) left
  MN_HOSTS=$n
  ip link add "$MN_BR" type bridge
  sysctl -qw "net.ipv6.conf.$MN_BR.disable_ipv6=1" 2>/dev/null || true
  ip link set "$MN_BR" up
  # tdm0 is the login node: mpirun runs there (its daemons call back to it).
  for i in $(seq 0 "$n"); do
    ns=tdm$i
    ip netns add "$ns"
    ip link add "v$ns" type veth peer name eth0 netns "$ns"
    ip link set "v$ns" master "$MN_BR" up
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    ip -n "$ns" addr add "$MN_NET.$((i == 0 ? 254 : i))/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  # A login node gives up on a node it cannot reach after ~13 s of retransmissions
  # (5 retries) rather than Linux's ~15 min (15): see README, "Several nodes".
  ip netns exec tdm0 sysctl -qw net.ipv4.tcp_retries2=5
}

mn_down() { mn_down_n "$MN_HOSTS"; }
mn_down_n() {
  local n=$1 i ns pids
  mn_undelay
  for i in $(seq 0 "$n"); do
    ns=tdm$i
    if [[ -e /run/netns/$ns ]]; then
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -z $pids ]] || { kill -9 $pids 2>/dev/null; sleep 0.3; }
      ip netns del "$ns"
    fi
    ip link del "v$ns" 2>/dev/null || true
    ip link del "dl$ns" 2>/dev/null || true  # a delay line's private bridge
  done
  ip link del "$MN_BR" 2>/dev/null || true
}

# mn_hostfile FILE H:SLOTS...: an Open MPI hostfile ("tdm1 slots=2").
mn_hostfile() {
  local f=$1 spec
  shift
  : >"$f"
  for spec in "$@"; do echo "${spec%%:*} slots=${spec##*:}" >>"$f"; done
}

# mn_mpirun HOSTFILE N TANDEM-ARGS...: the documented cluster launch
# (launch/mpirun.sh) across the namespace hosts, ended by SIGKILL after
# MN_TIMEOUT s (300): mpirun may ignore SIGTERM while a daemon is unreachable.
# Test-specific: the agent (no sshd in a namespace), and yielding MPI polls
# (Open MPI thinks every fake host has cores of its own).
mn_mpirun() {
  local hostfile=$1
  shift
  OMPI_MCA_plm_rsh_agent="$MN_DIR/rsh" OMPI_MCA_mpi_yield_when_idle=1 TANDEM_HOSTFILE=$hostfile \
    TANDEM_NET=$MN_NET.0/24 TANDEM_BIN=${TANDEM_BIN:-$TANDEM} \
    timeout -k 5 "${MN_TIMEOUT:-300}" "$MN_DIR/rsh" tdm0 exec "$(printf '%q ' "$REPO/launch/mpirun.sh" "$@")"
}

# mn_train DIR CONFIG HOST:SLOTS... -- [OPTIONS]: `tandem train` with CONFIG on
# those hosts (one rank per slot) into DIR; the log goes to DIR.log.
mn_train() {
  local dir=$1 config=$2 specs=() np=0
  shift 2
  while [[ $1 != -- ]]; do specs+=("$1"); np=$((np + ${1##*:})); shift; done
  shift
  mn_hostfile "$dir.hosts" "${specs[@]}"
  mn_mpirun "$dir.hosts" "$np" train --config "$config" --run.dir="$dir" --train.log_every=0 \
    "$@" >"$dir.log" 2>&1
}

mn_link() { ip link set "v$1" "$2"; }

mn_kill_host() {
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  [[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
}

MN_DELAY_PIDS=()
mn_delay() {
  local host=$1 ms=$2 loss=${3:-0}
  /usr/bin/python3 "$MN_DIR/delay_line.py" "v$host" "$MN_BR" "$ms" "$loss" &
  MN_DELAY_PIDS+=($!)
  local i
  for i in $(seq 1 50); do  # until the line carries the traffic
    [[ -e /sys/class/net/dl$host ]] && ip link show "v$host" | grep -q "master dl$host" && return 0
    sleep 0.1
  done
  echo "mn_delay: the delay line for $host did not start" >&2
  return 1
}

mn_undelay() {
  local pid
  for pid in "${MN_DELAY_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  MN_DELAY_PIDS=()
}

# mn_slurm_start DIR N: a Slurm cluster of hosts tdm1..tdmN (controller on tdm1),
# as launch/local-slurm.sh builds one node; exports SLURM_CONF. Returns 1 with
# the reason in SLURM_WHY. mn_down stops its daemons with everything else.
mn_slurm_start() {
  local dir=$1 n=$2 i
  source "$REPO/launch/local-slurm.sh"
  SLURM_WHY=""
  slurm_prepare "$dir" || return 1
  slurm_conf "$dir" "tdm1($MN_NET.1)" >"$dir/slurm.conf"
  # %n: one directory per node, as on real nodes (a shared TmpFS breaks PMIx).
  cat >>"$dir/slurm.conf" <<CONF
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmdSpoolDir=$dir/spool-%n
SlurmdLogFile=$dir/slurmd-%n.log
TmpFS=$dir/tmp-%n
NodeName=tdm[1-$n] NodeAddr=$(seq -f "$MN_NET.%g" 1 "$n" | paste -sd,) CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=$(( $(slurm_memory) / n )) State=UNKNOWN
PartitionName=debug Nodes=tdm[1-$n] Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  for i in $(seq 1 "$n"); do mkdir -p "$dir/spool-tdm$i" "$dir/tmp-tdm$i"; done
  export SLURM_CONF=$dir/slurm.conf
  "$MN_DIR/rsh" tdm1 slurmctld || { SLURM_WHY="slurmctld did not start (see $dir/slurmctld.log)"; return 1; }
  # slurmd needs the cgroup mounts that `ip netns exec` hides: enter the network only.
  for i in $(seq 1 "$n"); do
    nsenter --net=/run/netns/tdm$i unshare --uts sh -c "hostname tdm$i && exec slurmd -N tdm$i" ||
      { SLURM_WHY="slurmd on tdm$i did not start (see $dir/slurmd-tdm$i.log)"; return 1; }
  done
  for i in $(seq 1 60); do
    [[ $("$MN_DIR/rsh" tdm1 sinfo -h -o %T -N 2>/dev/null | grep -Ec '^(idle|mixed)') == "$n" ]] && return 0
    sleep 0.5
  done
  SLURM_WHY="the nodes never became idle: $("$MN_DIR/rsh" tdm1 sinfo -h -N 2>&1 | paste -sd ' ')"
  return 1
}
