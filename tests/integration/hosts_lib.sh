# SPDX-License-Identifier: BSD-3-Clause
# Helpers of the hosts_*.sh tests (sourced after lib.sh): a cluster of
# emulated hosts (tests/hosts/hec-hosts), its daemons started as on a real
# cluster (doc/config.md: `hecctld -f FILE`, `hecd -f FILE`), not by `hec
# cluster up`.  The files are laid out as `cluster up` lays out its own
# (hecctld.conf, cluster.key, state/, log/NAME.log, run/NAME.pid in
# $HEC_DIR), so lib.sh's dump_logs and `hec cluster down` (the controller's
# orderly shutdown, then the pid files) serve here too.
#
# The CLI talks to the controller over its Unix socket in $HEC_DIR (the disk
# is shared): $HEC runs it in the login host, a host with no daemon, which
# shows that the CLI needs no daemon on its host, but not yet that it works
# over the network: a remote CLI (TCP, MUNGE) is a later slice of issue #15.
HOSTS="$HEC_SRCDIR/tests/hosts/hec-hosts"
HOSTS_DIR="$HEC_DIR/hosts"

command -v nsenter >/dev/null && command -v unshare >/dev/null ||
	skip "nsenter or unshare missing (util-linux)"
command -v ip >/dev/null || skip "ip missing (iproute2)"

# on_host N CMD...: CMD in host N
on_host() { "$HOSTS" exec "$HOSTS_DIR" "$@"; }
host_addr() { "$HOSTS" addr "$HOSTS_DIR" "$1"; }

# host_daemon NAME N BINARY: start daemon NAME (config $HEC_DIR/NAME.conf)
# in host N as lib.sh's start_daemon does (hec-hosts execs into it: the pid
# is the daemon's).
host_daemon() {
	local name=$1 n=$2 bin=$3
	setsid "$HOSTS" exec "$HOSTS_DIR" "$n" "$bin" -f "$HEC_DIR/$name.conf" </dev/null \
		>>"$HEC_DIR/log/$name.log" 2>&1 &
	echo $! >"$HEC_DIR/run/$name.pid"
	disown
}

# hosts_up NODES [CONTROLLER LINES...]: NODES compute hosts host0 ..
# (hecctld on host0, hecd on each, named by its host name) plus the login
# host host$NODES; each further argument a line of hecctld.conf.  Back once
# every node is IDLE.
hosts_up() {
	local nodes=$1 k ctl i line
	shift
	LOGIN=$nodes
	export HEC_LOGIN_HOST=$nodes # for $HEC
	mkdir -p "$HEC_DIR"/log "$HEC_DIR"/run "$HEC_DIR"/state "$HEC_DIR"/spool
	"$HOSTS" up $((nodes + 1)) "$HOSTS_DIR" >/dev/null || fail "hec-hosts up failed"
	# a test's links shaped before any daemon talks (optional)
	if declare -F hosts_shape >/dev/null; then hosts_shape; fi
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HEC_DIR/cluster.key"
	chmod 600 "$HEC_DIR/cluster.key"
	ctl="$(host_addr 0):6817"
	cat >"$HEC_DIR/hecctld.conf" <<EOF
# written by hosts_lib.sh (as \`hec cluster up\` writes its own)
cluster_name = hosts$$
state_dir = $HEC_DIR/state
socket = $HEC_DIR/hecctld.sock
listen = $ctl
key_file = $HEC_DIR/cluster.key
spool_dir = $HEC_DIR/spool
node_timeout = 2s
heartbeat_interval = 200ms
EOF
	for line in "$@"; do echo "$line" >>"$HEC_DIR/hecctld.conf"; done
	host_daemon hecctld 0 "$HECCTLD"
	# Each node as an administrator would write it: no name (the host
	# name), the controller by its host's name (each host's /etc/hosts).
	for k in $(seq 0 $((nodes - 1))); do
		mkdir -p "$HEC_DIR/state/host$k"
		cat >"$HEC_DIR/host$k.conf" <<EOF
# written by hosts_lib.sh
cluster_name = hosts$$
controller = host0:6817
listen = $(host_addr "$k"):6818
key_file = $HEC_DIR/cluster.key
state_dir = $HEC_DIR/state/host$k
EOF
	done
	for i in $(seq 100); do
		[ -S "$HEC_DIR/hecctld.sock" ] && break
		pid_alive "$(daemon_pid hecctld)" || fail "hecctld exited at start"
		sleep 0.1
	done
	for k in $(seq 0 $((nodes - 1))); do host_daemon "host$k" "$k" "$HECD"; done
	for k in $(seq 0 $((nodes - 1))); do wait_node_state "host$k" IDLE 20; done
}

# aligned JOB [PCT]: sample job JOB (of host0 and host1, time-shared, gang
# checks read cgroup v2: run_r, $v2root, $cname) on host0, host1, host0
# again within 10 ms (a fifth of a 50 ms slot); where host0's two reads
# agree, host1's must agree with them but for the hosts' switches' skew
# around a slot boundary.  Fail if they disagree in more than PCT percent
# (10) of the samples: unaligned slots (hosts switching on their own) would
# disagree in about half.  Sets ALIGN_N (samples) and ALIGN_OFF (disagreeing).
aligned() {
	local job=$1 pct=${2:-10} i=0 t0 t1 x1 y x2 n=0 off=0 on=0 end=$((SECONDS + 60))
	while [ "$n" -lt 200 ] && [ "$SECONDS" -lt "$end" ]; do
		i=$((i + 1))
		t0=${EPOCHREALTIME/./}
		run_r host0 "$job"; x1=$R; run_r host1 "$job"; y=$R; run_r host0 "$job"; x2=$R
		t1=${EPOCHREALTIME/./}
		[ "$x1" = - ] || [ "$y" = - ] && break # the job ended
		[ $((t1 - t0)) -lt 10000 ] && [ "$x1" = "$x2" ] || continue
		n=$((n + 1))
		[ "$x1" = 1 ] && on=$((on + 1))
		[ "$y" = "$x1" ] || off=$((off + 1))
		sleep 0.013
	done
	ALIGN_N=$n ALIGN_OFF=$off
	echo "aligned: $n samples of job $job in $i rounds, running in $on, hosts disagreeing in $off"
	[ "$n" -ge 50 ] || fail "only $n valid samples of job $job's slots on the two hosts"
	[ "$on" -ge 5 ] && [ $((n - on)) -ge 5 ] || fail "job $job not seen both running and frozen ($on of $n)"
	[ $((off * 100)) -le $((n * pct)) ] ||
		fail "job $job's slots on host0 and host1 are not aligned: they disagree in $off of $n samples (more than $pct%)"
}

# mpi_check_done ITERS JOB...: each JOB (mpi_check ITERS on 2 ranks: 1 + 2) ends
# within 60 s with the right sum
mpi_check_done() {
	local iters=$1 j sum
	shift
	sum=$((3 * iters * (iters + 1) / 2))
	for j in "$@"; do
		"$HEC" wait --timeout 60 "$j" || fail "job $j: $(job_state "$j") $(job_field "$j" reason)"
		grep -qx "result sum=$sum expected=$sum OK" <<<"$("$HEC" logs "$j")" ||
			fail "job $j result wrong: $("$HEC" logs "$j" | grep '^result')"
	done
}

# The daemons stopped as `hec cluster down` stops them, then the hosts
# removed; lib.sh's cleanup then checks that nothing of the cluster is left,
# and test_left that no namespace of the hosts is.
test_cleanup() {
	local k nodes
	# every link up: a test that failed with one cut leaves that host's
	# daemon cut off from the controller's orderly shutdown
	for k in $(seq 0 "${LOGIN:-0}"); do "$HOSTS" link "$HOSTS_DIR" "$k" up 2>/dev/null; done
	# (and back: the controller has what it holds of ended jobs killed)
	for k in $(seq 100); do
		nodes=$("$HEC" nodes --json 2>/dev/null) || break # no hosts or no controller
		jq -e 'all(.nodes[]; .state != "DOWN")' <<<"$nodes" >/dev/null && break
		sleep 0.1
	done
	"$HEC_BUILDDIR/hec" cluster down >/dev/null 2>&1
	"$HOSTS" down "$HOSTS_DIR"
}
HOSTS_PREFIX=$("$HOSTS" prefix "$HOSTS_DIR")
test_left() { ip netns list | grep "^$HOSTS_PREFIX-" || true; }

# The CLI, in the login host (after hosts_up).
HEC="$TEST_DIR/hec-login"
cat >"$HEC" <<EOF
#!/bin/sh
exec "$HOSTS" exec "$HOSTS_DIR" "\${HEC_LOGIN_HOST:?no hosts up}" "$HEC_BUILDDIR/hec" "\$@"
EOF
chmod +x "$HEC"
