# SPDX-License-Identifier: BSD-3-Clause
# Shared helpers for the integration tests (sourced).  Each test starts its
# own embedded cluster in a fresh directory and always takes it down again.
set -u

: "${HEC_BUILDDIR:?run through make check (HEC_BUILDDIR unset)}"
: "${HEC_SRCDIR:?run through make check (HEC_SRCDIR unset)}"
HEC="$HEC_BUILDDIR/hec"
HECCTLD="$HEC_BUILDDIR/hecctld"
HECD="$HEC_BUILDDIR/hecd"
HECSTORED="$HEC_BUILDDIR/hecstored"
MPI_CHECK="$HEC_BUILDDIR/tests/mpi/mpi_check"
TEST_NAME=$(basename "$0" .sh)

skip() { echo "SKIP: $TEST_NAME: $*"; exit 77; }
# fail in a subshell (a pipeline's part, a $(...), a & job) ends the test
# too, not only the subshell: USR2 to the shell that sourced this file (a
# test, or a benchmark's subshell), which exits 1
HEC_TEST_SHELL=$BASHPID
fail() {
	echo "FAIL: $TEST_NAME: $*" >&2
	dump_logs
	[ "$BASHPID" = "$HEC_TEST_SHELL" ] || kill -USR2 "$HEC_TEST_SHELL" 2>/dev/null
	exit 1
}
note() { echo "-- $*"; }

[ "$(id -u)" = 0 ] || skip "needs root: partitions are cgroups"
grep -q cgroup /proc/self/mounts || skip "no cgroup file system mounted"

TEST_DIR=$(mktemp -d /tmp/hec-test.XXXXXX)
chmod 755 "$TEST_DIR"
export HEC_DIR="$TEST_DIR/cluster"
# Tests must not touch the user's default cluster record.
export HOME="$TEST_DIR/home"
mkdir -p "$HOME"

dump_logs() {
	[ -d "$HEC_DIR/log" ] || return 0
	for f in "$HEC_DIR"/log/*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
}

cleanup() {
	local rc=$? f i m c d left
	trap '' USR2 # a late fail of a subshell: the cleanup goes on
	# A test's own helpers that would keep jobs from ending (optional).
	if declare -F test_cleanup >/dev/null; then test_cleanup || true; fi
	"$HEC" cluster down >/dev/null 2>&1 || true
	# `cluster down` leaves nothing of the test's clusters: a process naming
	# the test directory (hecctld, hecd, and hecstored with its config under
	# store/) or a cgroup of one of its clusters fails the test (a moment's
	# grace for processes already dying).
	for i in $(seq 20); do
		left=$(pgrep -f -- "$TEST_DIR" | grep -vx "$$" || true)
		for f in $(find "$TEST_DIR" -maxdepth 3 -name hecctld.conf 2>/dev/null); do
			c=$(sed -n 's/^cluster_name *= *//p' "$f")
			[ -n "$c" ] || continue
			for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts); do
				[ -d "$m/hec/$c" ] && left="$left $m/hec/$c"
			done
		done
		[ -n "$left" ] || break
		sleep 0.1
	done
	if [ -n "$left" ]; then
		echo "FAIL: $TEST_NAME: left after cluster down:" >&2
		for f in $left; do
			case $f in
			/*) find "$f" -name cgroup.procs -exec sh -c 'echo "cgroup ${1%/cgroup.procs}: $(cat "$1" | tr "\n" " ")"' sh {} \; >&2 ;;
			*) ps -o pid=,args= -p "$f" >&2 ;;
			esac
		done
		rc=1
	fi
	# What else a test's own helpers made and must not leave (optional:
	# test_left prints it).
	if declare -F test_left >/dev/null; then
		extra=$(test_left)
		if [ -n "$extra" ]; then
			echo "FAIL: $TEST_NAME: left after the test: $extra" >&2
			rc=1
		fi
	fi
	# Whatever happened, leave no daemon behind.
	pkill -9 -f "$TEST_DIR" 2>/dev/null || true
	for f in $left; do
		case $f in
		/*)
			for d in $(find "$f" -depth -type d); do
				[ -e "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill" 2>/dev/null
				xargs -r kill -9 <"$d/cgroup.procs" 2>/dev/null
			done
			sleep 0.2
			find "$f" -depth -type d -exec rmdir {} \; 2>/dev/null
			;;
		esac
	done
	# A sanitizer report in a daemon's log fails the test (sanitizer builds).
	for f in "$HEC_DIR"/log/*.log; do
		[ -f "$f" ] || continue
		if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"; then
			echo "FAIL: $TEST_NAME: sanitizer report in $f:" >&2
			grep -A 30 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$f" | head -60 >&2
			rc=1
		fi
	done
	rm -rf "$TEST_DIR"
	exit $rc
}
trap cleanup EXIT
# The harness's time limit (tests/run-bounded) ends a wedged test by SIGTERM:
# show the daemons' logs before they go.
trap 'fail "terminated by SIGTERM (the time limit of tests/run-bounded?)"' TERM
trap 'exit 1' USR2

# valgrind_daemons: the daemons of the next cluster_up run under valgrind,
# their reports in $TEST_DIR/vg; valgrind_verdict (after cluster down)
# fails unless there are N reports (default 3) and all are clean.
valgrind_daemons() {
	command -v valgrind >/dev/null || skip "valgrind not installed (apt-get install valgrind)"
	mkdir -p "$TEST_DIR/vg"
	export HEC_DAEMON_WRAPPER="valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --trace-children=no --child-silent-after-fork=yes --log-file=$TEST_DIR/vg/%p.log"
}
valgrind_verdict() {
	local want=${1:-3} logs f bad=0
	logs=$(grep -l "ERROR SUMMARY" "$TEST_DIR"/vg/*.log 2>/dev/null | wc -l)
	[ "$logs" -ge "$want" ] || fail "expected valgrind logs of $want daemons, found $logs"
	for f in "$TEST_DIR"/vg/*.log; do
		if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
			echo "---- $f" >&2; cat "$f" >&2; bad=1
		fi
	done
	[ "$bad" = 0 ] || fail "valgrind found errors or leaks in the daemons"
}

# cluster_up N [extra args]
# What a test with QEMU guests needs here, or it skips saying what is missing.
need_guests() {
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (Debian package qemu-system-x86)"
	ls /boot/vmlinuz-* >/dev/null 2>&1 || skip "no guest kernel in /boot (Debian package linux-image-amd64)"
	[ -x /bin/busybox ] || skip "no /bin/busybox (Debian package busybox-static)"
}

# HEC_TEST_VM_HUGEPAGES=auto|on runs a test's guests in huge pages (the
# pool is the caller's to reserve: vm.nr_hugepages); a test's own
# --vm-hugepages, given later, wins.
cluster_up() {
	local n=$1; shift
	"$HEC" cluster up --nodes "$n" --node-timeout 2s --heartbeat 200ms \
		${HEC_TEST_VM_HUGEPAGES:+--vm-hugepages "$HEC_TEST_VM_HUGEPAGES"} "$@" ||
		fail "cluster up --nodes $n failed"
}

# submit ARGS... : prints the job id
submit() {
	local out
	out=$("$HEC" submit "$@") || fail "submit $* failed: $out"
	case $out in
	"Submitted job "*) echo "${out#Submitted job }" ;;
	*) fail "submit printed '$out'" ;;
	esac
}

job_field() { "$HEC" show "$1" --json | jq -r ".job.$2"; }

# flip_byte FILE OFFSET: the byte at OFFSET of FILE with all its bits
# flipped (writing a fixed value would change nothing where it is already
# there: a stream's bytes are the guest's or the program's).
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || return 1
	printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
job_state() { job_field "$1" state; }

# wait_state ID STATE [SECONDS]
wait_state() {
	local id=$1 want=$2 secs=${3:-30} i st=""
	for i in $(seq $((secs * 10))); do
		st=$(job_state "$id")
		[ "$st" = "$want" ] && return 0
		sleep 0.1
	done
	fail "job $id: state $st after ${secs}s, expected $want"
}

# wait_final ID STATE [SECONDS]: the job reaches a final state, and it is STATE
wait_final() {
	local id=$1 want=$2 secs=${3:-60} i st=""
	for i in $(seq $((secs * 10))); do
		st=$(job_state "$id" 2>/dev/null)
		case $st in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL) break ;; esac
		sleep 0.1
	done
	[ "$st" = "$want" ] ||
		fail "job $id: $st ($(job_field "$id" reason)) after up to ${secs}s, expected $want"
}

# pid_alive PID: running (a zombie left for this shell to reap is not)
pid_alive() {
	local s
	s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ "$s" != Z ]
}

# Fault points (HEC_FAULT, include/hec/fault.h) of daemon NAME, started by
# start_daemon, logging to $HEC_DIR/log/NAME.log.
# fault_seen NAME POINT: how many times NAME's log says it died at POINT
fault_seen() { grep -c "fault injection: dying at $2 " "$HEC_DIR/log/$1.log"; }
# restart_daemon NAME BIN [POINT [SIGNAL]]: NAME stopped (SIGNAL, default
# TERM) if it runs, and started again, with HEC_FAULT=POINT if given (its
# death there is expected: no "Killed" from this shell).
restart_daemon() {
	local name=$1 bin=$2 sig=${4:-TERM} pid i
	pid=$(daemon_pid "$name")
	if pid_alive "$pid"; then
		kill -"$sig" "$pid"
		for i in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
		pid_alive "$pid" && fail "$name did not stop on SIG$sig"
	fi
	if [ -n "${3:-}" ]; then
		HEC_FAULT=$3 start_daemon "$name" "$bin"
	else
		start_daemon "$name" "$bin"
	fi
	disown
}
# died_at NAME POINT BEFORE: NAME killed itself at POINT (BEFORE: fault_seen
# NAME POINT before)
died_at() {
	local name=$1 point=$2 before=$3 pid i
	pid=$(daemon_pid "$name")
	for i in $(seq 300); do pid_alive "$pid" || break; sleep 0.1; done
	pid_alive "$pid" && fail "$name still alive 30 s on: fault point $point never reached"
	[ "$(fault_seen "$name" "$point")" -gt "$before" ] ||
		fail "$name died, but not at $point: $(tail -n 3 "$HEC_DIR/log/$name.log")"
	note "$name died at $point"
}

# expect_fail EXIT PATTERN CMD... : the command must fail with EXIT and print PATTERN
expect_fail() {
	local want=$1 pat=$2 out rc; shift 2
	out=$("$@" 2>&1) && fail "'$*' succeeded; expected exit $want"
	rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want: $out"
	printf '%s' "$out" | grep -qE -- "$pat" || fail "'$*' printed '$out', expected /$pat/"
	[ "$(printf '%s\n' "$out" | wc -l)" -le 2 ] || fail "'$*' printed more than a short error: $out"
}

cluster_name() { sed -n 's/^cluster_name *= *//p' "$HEC_DIR/hecctld.conf"; }
v2_mount() { awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts; }
# cluster_cgroups NAME: the cgroup directories of cluster NAME that exist,
# on every hierarchy (hecd makes hec/NAME/NODE under each it uses).
cluster_cgroups() {
	local m
	for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts); do
		if [ -d "$m/hec/$1" ]; then echo "$m/hec/$1"; fi
	done
}
cpuset_mount() { awk '$3 == "cgroup" && $4 ~ /(^|,)cpuset(,|$)/ { print $2; exit }' /proc/self/mounts; }

# Processes whose command line holds a marker string, other than ourselves.
procs_with() { pgrep -f -- "$1" | grep -vx "$$" || true; }

daemon_pid() { cat "$HEC_DIR/run/$1.pid"; }

# start_daemon NAME BINARY: start a daemon by hand as `hec cluster up` does
# (after a test killed it), recording its pid where `cluster down` looks.
start_daemon() {
	local name=$1 bin=$2
	setsid "$bin" -f "$HEC_DIR/$name.conf" </dev/null >>"$HEC_DIR/log/$name.log" 2>&1 &
	echo $! >"$HEC_DIR/run/$name.pid"
}

# start_store NAME: start storage server NAME (s0 ...) by hand with the
# config `hec cluster up --storage` wrote, as start_daemon does.
start_store() {
	local name=$1
	setsid "$HECSTORED" -f "$HEC_DIR/store/$name/hecstored.conf" </dev/null \
		>>"$HEC_DIR/log/$name.log" 2>&1 &
	echo $! >"$HEC_DIR/run/$name.pid"
}

# store_field NAME FIELD: a field of storage server NAME in `hec storage --json`.
store_field() { "$HEC" storage --json | jq -r ".servers[] | select(.name==\"$1\") | .$2"; }

# wait_store NAME STATE [SECONDS]: until `hec storage` shows server NAME in STATE
wait_store() {
	local name=$1 want=$2 secs=${3:-15} i st=""
	for i in $(seq $((secs * 10))); do
		st=$(store_field "$name" state)
		[ "$st" = "$want" ] && return 0
		sleep 0.1
	done
	fail "storage server $name: state '$st' after ${secs}s, expected $want"
}

node_state() { "$HEC" nodes --json | jq -r ".nodes[] | select(.name==\"$1\") | .state"; }

wait_node_state() {
	local node=$1 want=$2 secs=${3:-20} i st=""
	for i in $(seq $((secs * 10))); do
		st=$(node_state "$node")
		[ "$st" = "$want" ] && return 0
		sleep 0.1
	done
	fail "$node: state $st after ${secs}s, expected $want"
}

# run_r NODE JOB: sets R to 1 if the partition runs (cgroup.freeze asks for
# running and cgroup.events does not report it frozen), 0 if not, - if gone;
# and P to cgroup.events' populated (0: no process in it, nothing can run).
# Both files: the kernel reports a frozen group "frozen 0" for a moment when
# a signal wakes one of its tasks, though nothing of it runs user code.
# Bash builtins only: a forked reader under MPI load takes longer than a
# slot, and a sample must be much shorter than one.  Needs $v2root, $cname.
run_r() {
	local k v f d="$v2root/hec/$cname/$1/job.$2"
	R=- P=-
	{ read -r f <"$d/cgroup.freeze"; } 2>/dev/null || return 0
	{ while read -r k v; do
		case $k in frozen) R=$((v == 0 && f == 0)) ;; populated) P=$v ;; esac
	done <"$d/cgroup.events"; } 2>/dev/null
}

# alternation A B ROUNDS [SAMPLER]: sample jobs A and B on node0 and node1
# (or the nodes named in $ALT_NODES)
# for ROUNDS rounds, and on while fewer than 50 samples count (for at most
# 120 s, while both jobs run); fail if both run at once on a node while
# both are RUNNING.  SAMPLER NODE JOB sets R as run_r does (the default).
# A sample counts only if A's state read the same before and after B's,
# within 10 ms (1/5 of a 50 ms slot): on a loaded machine fewer count, and
# the sampling goes on longer instead.  Nor does one where A or B has no
# process on the node (a partition just made, before the epoch that
# schedules it arrives and freezes it: nothing of it can run; a SAMPLER
# may set P as run_r does).  Sets SAMPLES, SEEN_A, SEEN_B.
alternation() {
	local a=$1 b=$2 rounds=$3 sample=${4:-run_r} i=0 node t0 t1 a1 b1 a2 pa pb j end=$((SECONDS + 120))
	SAMPLES=0 SEEN_A=0 SEEN_B=0
	while [ "$i" -lt "$rounds" ] || { [ "$SAMPLES" -lt 50 ] && [ "$SECONDS" -lt "$end" ]; }; do
		i=$((i + 1))
		for node in ${ALT_NODES:-node0 node1}; do
			t0=${EPOCHREALTIME/./}
			P=1
			$sample $node "$a"; a1=$R pa=$P; $sample $node "$b"; b1=$R pb=$P; $sample $node "$a"; a2=$R
			t1=${EPOCHREALTIME/./}
			[ $((t1 - t0)) -lt 10000 ] || continue # slower than 1/5 slot: no proof either way
			[ "$a1" = - ] || [ "$b1" = - ] && continue
			[ "$pa" = 0 ] || [ "$pb" = 0 ] && continue
			[ "$a1" = "$a2" ] || continue
			SAMPLES=$((SAMPLES + 1))
			if [ "$a1" = 1 ] && [ "$b1" = 1 ]; then
				# A job that has printed its result, or is ending, is being
				# torn down: killing a partition thaws it so the signal
				# lands.  That is no overlap.
				for j in $a $b; do
					[ "$(job_state "$j")" = RUNNING ] || break 3
					grep -q '^result' "$(job_field "$j" output)" 2>/dev/null && break 3
				done
				fail "jobs $a and $b both running on $node (sample $i)"
			fi
			[ "$a1" = 1 ] && SEEN_A=$((SEEN_A + 1))
			[ "$b1" = 1 ] && SEEN_B=$((SEEN_B + 1))
		done
		# the state check forks the CLI: not on every round
		if [ $((i % 25)) = 0 ]; then
			[ "$(job_state "$a")" = RUNNING ] && [ "$(job_state "$b")" = RUNNING ] || break
		fi
		sleep 0.007
	done
	echo "samples $SAMPLES in $i rounds: job $a running in $SEEN_A, job $b in $SEEN_B"
	[ "$SAMPLES" -ge 50 ] || fail "only $SAMPLES valid samples"
	[ "$SEEN_A" -ge 5 ] && [ "$SEEN_B" -ge 5 ] || fail "no alternation seen (a $SEEN_A, b $SEEN_B)"
}

# app_ckpt_job GO: $TEST_DIR/job.sh, a batch step whose program
# (tests/tools/hec-appclient) takes one checkpoint of $TEST_DIR/data
# (begin 0), touches $TEST_DIR/taken, waits for the file GO and exits 3;
# restarted from that checkpoint it prints "restore ok from EPOCH" if it
# got the bytes back, says `restored` and exits 0.
app_ckpt_job() {
	local client="$HEC_BUILDDIR/tests/tools/hec-appclient"
	cat >"$TEST_DIR/first" <<EOS
send {"op":"hello","job":\$J,"ranks":1}
expect hello
send {"op":"begin","epoch":0}
expect epoch
sh cp $TEST_DIR/data "\$D/ckpt-\$E.h5"
send {"op":"written","epoch":\$E,"path":"\$D/ckpt-\$E.h5","bytes":$(stat -c %s "$TEST_DIR/data")}
expect taken
sh touch $TEST_DIR/taken
sh while [ ! -e $1 ]; do sleep 0.1; done
EOS
	cat >"$TEST_DIR/again" <<EOS
send {"op":"hello","job":\$J,"ranks":1}
expect hello
sh cmp "\$HEC_CKPT_RESTORE" $TEST_DIR/data && echo "restore ok from \$HEC_CKPT_EPOCH"
send {"op":"restored","epoch":\$HEC_CKPT_EPOCH}
EOS
	cat >"$TEST_DIR/job.sh" <<EOS
#!/bin/sh
if [ -n "\$HEC_CKPT_RESTORE" ]; then
	sed "s/\\\$HEC_CKPT_EPOCH/\$HEC_CKPT_EPOCH/" $TEST_DIR/again >$TEST_DIR/again.\$HEC_CKPT_EPOCH
	exec $client $TEST_DIR/again.\$HEC_CKPT_EPOCH
fi
$client $TEST_DIR/first
exit 3
EOS
	chmod +x "$TEST_DIR/job.sh"
}

# ctl_restart_with LINE...: the controller stopped, each LINE appended to its
# configuration, and started again; back once every node it knows is IDLE
# and every storage server of the cluster is up again.
ctl_restart_with() {
	local line i stores
	kill "$(daemon_pid hecctld)"
	for i in $(seq 100); do kill -0 "$(daemon_pid hecctld)" 2>/dev/null || break; sleep 0.1; done
	for line in "$@"; do echo "$line" >>"$HEC_DIR/hecctld.conf"; done
	start_daemon hecctld "$HECCTLD"
	stores=$(find "$HEC_DIR/store" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
	for i in $(seq 150); do
		"$HEC" nodes --json 2>/dev/null | jq -e '.nodes | length > 0 and all(.state == "IDLE")' >/dev/null &&
			[ "$("$HEC" storage --json 2>/dev/null | jq '[.servers[] | select(.state == "up")] | length')" -ge "$stores" ] &&
			return 0
		sleep 0.2
	done
	fail "after the controller's restart: $("$HEC" nodes 2>&1); $("$HEC" storage 2>&1)"
}
