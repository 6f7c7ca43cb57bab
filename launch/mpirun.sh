#!/usr/bin/env bash
# Runs `tandem` on N ranks with Open MPI's mpirun: on this machine, or across nodes.
#   launch/mpirun.sh N train --config configs/quickstart.ini [--section.key=value ...]
#   TANDEM_HOSTFILE=hosts TANDEM_NET=10.0.0.0/24 launch/mpirun.sh 8 train --config ...
# On one machine ranks are not bound to cores, so each rank's threads (cores /
# local ranks by default) can run; more ranks than cores are allowed.
# Across nodes:
#   TANDEM_HOSTFILE  an Open MPI hostfile, one node per line: "node1 slots=4". The
#                    binary and the data paths must be the same on every node.
#   TANDEM_NET       the network the ranks talk over: a CIDR (10.0.0.0/24) or an
#                    interface (eth1); Open MPI would otherwise try every interface.
# Keepalive: Open MPI's daemons notice a silent peer only through TCP keepalive,
# after 300 + 9 x 20 s by default; here after 10 + 3 x 5 s. A hung collective is
# ended earlier by Tandem itself (comm.timeout_s). OMPI_MCA_* in the environment
# override these defaults.
set -euo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 N <tandem command> [args...]" >&2
  exit 2
fi
n=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${TANDEM_BIN:-$repo/build/bin/tandem}
[[ -x $bin ]] || { echo "$0: $bin not found; build first (tests/run.sh or launch/quickstart.sh)" >&2; exit 2; }
export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-10}
export OMPI_MCA_oob_tcp_keepalive_intvl=${OMPI_MCA_oob_tcp_keepalive_intvl:-5}
export OMPI_MCA_oob_tcp_keepalive_probes=${OMPI_MCA_oob_tcp_keepalive_probes:-3}
flags=(--bind-to none)
if [[ -n ${TANDEM_HOSTFILE:-} ]]; then
  [[ -r $TANDEM_HOSTFILE ]] || { echo "$0: TANDEM_HOSTFILE '$TANDEM_HOSTFILE' is not readable" >&2; exit 2; }
  flags+=(--hostfile "$TANDEM_HOSTFILE")
elif ((n > $(nproc))); then
  flags+=(--oversubscribe)
fi
if [[ -n ${TANDEM_NET:-} ]]; then
  flags+=(--mca btl tcp,vader,self --mca btl_tcp_if_include "$TANDEM_NET"
          --mca oob_tcp_if_include "$TANDEM_NET")
fi
[[ $(id -u) == 0 ]] && flags+=(--allow-run-as-root)
exec mpirun "${flags[@]}" -np "$n" "$bin" "$@"
