# SPDX-License-Identifier: BSD-3-Clause
# A real SLURM of the test's own (sourced after lib.sh, hosts_lib.sh and
# munge_lib.sh): slurmctld on host0 and a slurmd per emulated host, our own
# munged, state, spool and logs under $TEST_DIR/slurm; never the machine's.
#   slurm_up K          K hosts (host0 .. host(K-1)) idle in partition t, or skip
#   slurm_stop          the daemons end
#   slurm_logs          their logs' tails (to stderr)
#   slurm_state JOB     a SLURM job's state (COMPLETED, TIMEOUT, ...)
#   slurm_wait_end JOB SECONDS   until it has ended; prints its state
#   hec_left JOB WHAT   fail if anything of hec is left after SLURM job JOB
#   slurm_cleanup       SLURM, its munged and the hosts gone (for test_cleanup)
# A failure shows SLURM's logs after lib.sh's.
for p in slurmctld slurmd sbatch squeue scontrol srun; do
	command -v $p >/dev/null || skip "$p missing (Debian packages slurmctld, slurmd, slurm-client)"
done
SL="$TEST_DIR/slurm"
export SLURM_CONF="$SL/slurm.conf"
# slurm_daemon NAME HOST CMD...: a SLURM daemon in the foreground (-D) in
# host HOST, its output in $SL/log/NAME.out, its pid in $SL/run/NAME.mypid
slurm_daemon() {
	local name=$1 n=$2; shift 2
	setsid "$HOSTS" exec "$HOSTS_DIR" "$n" "$@" </dev/null >>"$SL/log/$name.out" 2>&1 &
	echo $! >"$SL/run/$name.mypid"
	disown
}
slurm_stop() {
	local f pid i
	for f in "$SL"/run/*.mypid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null
		for i in $(seq 50); do pid_alive "$pid" || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
		rm -f "$f"
	done
}
slurm_logs() {
	local f
	for f in "$SL"/log/*; do
		[ -f "$f" ] || continue
		echo "---- $f (last 15 lines)" >&2
		tail -n 15 "$f" >&2
	done
}
slurm_state() {
	on_host 0 scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'
}
slurm_wait_end() {
	local i st
	for i in $(seq $(($2 * 5))); do
		st=$(slurm_state "$1")
		case $st in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | PREEMPTED | "") break ;; esac
		sleep 0.2
	done
	echo "$st"
}
slurm_up() {
	local k=$1 i d h want
	mkdir -p "$SL/state" "$SL/log" "$SL/run"
	for i in $(seq 0 $((k - 1))); do mkdir -p "$SL/spool/host$i"; done
	start_munged slurm
	"$HOSTS" up "$k" "$HOSTS_DIR" >/dev/null || fail "hec-hosts up failed"
	cat >"$SLURM_CONF" <<EOF
ClusterName=hectest
SlurmctldHost=host0
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$M/slurm.sock
SlurmctldPort=7817
SlurmdPort=7818
StateSaveLocation=$SL/state
SlurmdSpoolDir=$SL/spool/%n
SlurmctldPidFile=$SL/run/slurmctld.pid
SlurmdPidFile=$SL/run/slurmd.%n.pid
SlurmctldLogFile=$SL/log/slurmctld.log
SlurmdLogFile=$SL/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=5
NodeName=host[0-$((k - 1))] CPUs=$(nproc) State=UNKNOWN
PartitionName=t Nodes=host[0-$((k - 1))] Default=YES MaxTime=INFINITE State=UP
EOF
	slurm_daemon slurmctld 0 slurmctld -D -f "$SLURM_CONF"
	for i in $(seq 0 $((k - 1))); do
		slurm_daemon "slurmd$i" "$i" slurmd -D -N "host$i" -f "$SLURM_CONF"
	done
	want=$(for i in $(seq 0 $((k - 1))); do echo "host$i idle"; done | tr '\n' ' ')
	for i in $(seq 150); do
		# (the daemons first: with slurmctld gone, sinfo waits ~9 s for it)
		for d in "$SL"/run/*.mypid; do
			pid_alive "$(cat "$d")" && continue
			slurm_logs
			h=$(basename "$d" .mypid)
			skip "$h cannot run here: $(tail -n 3 "$SL/log/$h.out" | tr '\n' ' ')"
		done
		[ "$(on_host 0 sinfo -h -N -o '%N %t' 2>/dev/null | sort | tr '\n' ' ')" = "$want" ] && break
		sleep 0.2
	done
	[ "$i" -lt 150 ] || fail "SLURM's nodes not idle after 30 s: $(on_host 0 sinfo -N 2>&1)"
	note "SLURM up: $(on_host 0 sinfo -h -N -o '%N %t' | tr '\n' ' ')"
}
# nothing of hec left once the SLURM job is over: no daemon or srun naming
# the cluster's files (the hosts' holders name $HEC_DIR/hosts), no cgroup of
# its partitions (where any process of a job would be)
hec_left() {
	local left cg
	left=$(pgrep -f -- "$HEC_DIR(/hecctld\.conf|/node\.|/store/| |$)" | tr '\n' ,)
	[ -z "$left" ] || fail "left after SLURM job $1 ($2): $(ps -o pid=,args= -p "${left%,}")"
	cg=$(cluster_cgroups "slurm$1")
	[ -z "$cg" ] || fail "cgroups left after SLURM job $1 ($2): $cg"
}
slurm_cleanup() {
	"$HEC_BUILDDIR/hec" cluster down >/dev/null 2>&1
	slurm_stop
	stop_munged slurm
	"$HOSTS" down "$HOSTS_DIR"
}
eval "$(declare -f dump_logs | sed '1s/^dump_logs/lib_dump_logs/')"
dump_logs() { lib_dump_logs; slurm_logs; }
