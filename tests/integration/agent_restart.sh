#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A hecd restart (kill -9, or an orderly stop for an upgrade) kills no batch
# step, and loses none's exit status: each step's parent is its hec-keeper,
# which outlives hecd and leaves the step's end in the job's directory.
# Steps that end while hecd is down are recorded with their own exit code
# or signal and the time they ended; one that ends after the restart too.
. "$HEC_SRCDIR/tests/integration/lib.sh"

# (a node silent past its timeout would fail its jobs: here it comes back;
# no gang slots: a step frozen when hecd died would stay frozen until it
# returns, and could not end meanwhile)
cluster_up 1 --node-timeout 30s --timeslice none
cd "$TEST_DIR"
mk() { # NAME BODY: a batch script that waits for its release file
	printf '#!/bin/sh\nwhile [ -e %s/hold.%s ]; do sleep 0.1; done\n%s\n' \
		"$TEST_DIR" "$1" "$2" >"$TEST_DIR/$1.sh"
	chmod +x "$TEST_DIR/$1.sh"
	touch "$TEST_DIR/hold.$1"
}
# a job's step: its script's process (hecd runs it from the job's directory)
step() { procs_with "state/node0/job.$1/script"; }
running() { # JOB: its step runs
	local i
	for i in $(seq 200); do [ -n "$(step "$1")" ] && return 0; sleep 0.1; done
	fail "the step of job $1 is not running"
}
gone() { # JOB: its step has ended
	local i
	for i in $(seq 200); do [ -z "$(step "$1")" ] && return 0; sleep 0.1; done
	fail "the step of job $1 has not ended 20 s after its release"
}
mk code 'echo code-out; exit 7'
mk sig 'echo sig-out; kill -USR1 $$; sleep 5'
mk ok 'echo ok-out; exit 0'
mk later 'echo later-out; exit 3'
a=$(submit -N 1 -n 1 -J code --share "$TEST_DIR/code.sh")
b=$(submit -N 1 -n 1 -J sig --share "$TEST_DIR/sig.sh")
wait_state "$a" RUNNING
wait_state "$b" RUNNING
running "$a"
running "$b"

note "kill -9 of hecd; two steps end while it is down"
kill -9 "$(daemon_pid node0)"
sleep 0.3
rm "$TEST_DIR/hold.code" "$TEST_DIR/hold.sig"
gone "$a"
gone "$b"
ended=$(date +%s)
sleep 2 # their end is not hecd's return
start_daemon node0 "$HECD"
wait_state "$a" FAILED 20
wait_state "$b" FAILED 20
ra=$(job_field "$a" reason)
rb=$(job_field "$b" reason)
echo "job $a: $ra; job $b: $rb"
case $ra in *"exit code 7"*) ;; *) fail "job $a's reason is '$ra', not its exit code 7" ;; esac
case $rb in *"signal 10"* | *SIGUSR1* | *"User defined signal 1"*) ;; *) fail "job $b's reason is '$rb', not its signal (USR1)" ;; esac
grep -q "exit status unknown" <<<"$ra$rb" && fail "an exit status was lost"
end_a=$("$HEC" show "$a" --json | jq -r '.job.end_time')
[ "$end_a" != null ] && [ "$end_a" -le "$ended" ] ||
	fail "job $a's end time $end_a is not when its step ended (by $ended)"
grep -q code-out "$(job_field "$a" output)" || fail "job $a's output is missing"

note "an orderly hecd stop (SIGTERM) and restart while a step runs; it ends afterwards"
c=$(submit -N 1 -n 1 -J later "$TEST_DIR/later.sh")
wait_state "$c" RUNNING
running "$c"
pid=$(daemon_pid node0)
kill "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "hecd did not stop on SIGTERM"
[ -n "$(step "$c")" ] || fail "stopping hecd ended job $c's step"
start_daemon node0 "$HECD"
wait_node_state node0 ALLOCATED
sleep 1
[ "$(job_state "$c")" = RUNNING ] || fail "job $c is $(job_state "$c") after hecd's restart"
rm "$TEST_DIR/hold.later"
wait_state "$c" FAILED 20
rc=$(job_field "$c" reason)
case $rc in *"exit code 3"*) ;; *) fail "job $c's reason is '$rc', not its exit code 3" ;; esac
grep -q later-out "$(job_field "$c" output)" || fail "job $c's output is missing"

note "a step ends while hecd runs: as ever"
d=$(submit -N 1 -n 1 -J ok "$TEST_DIR/ok.sh")
rm "$TEST_DIR/hold.ok"
"$HEC" wait --timeout 30 "$d" || fail "job $d: $(job_state "$d") $(job_field "$d" reason)"
grep -q ok-out "$(job_field "$d" output)" || fail "job $d's output is missing"
echo "PASS"
