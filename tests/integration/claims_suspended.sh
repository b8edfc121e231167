#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# "Cancel and node failure work on a SUSPENDED job as on a RUNNING one (the
# agent kills frozen partitions)", and its clock stops while it is
# suspended (doc/design.md, "Gang scheduling"): three low-priority jobs,
# each SUSPENDED by a high-priority one in turn, end CANCELLED, TIMEOUT
# (only once it ran its limit, suspended past it by the wall clock) and
# NODE_FAIL with `hec wait` saying so, and nothing of them is left: no
# process, no cgroup in any hierarchy, on the node whose agent died too
# once it is back.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/claims_lib.sh"

cluster_up 2 --slot 50ms --max-share 1
cd "$TEST_DIR"
claims_setup

marker=hecsusp$$
# ranks that wait for their hold file (the marker names the job's processes)
hold() { touch "$TEST_DIR/hold-$1"; echo "while [ -e $TEST_DIR/hold-$1 ]; do sleep 0.05; done; echo $marker-$1"; }

# suspend NAME [SUBMIT ARGS]: a low job NAME, then a high one that suspends
# it; sets LOW and HIGH
suspend() {
	local name=$1; shift
	LOW=$(submit -N 2 -n 2 --share -J "$name" "$@" -- /bin/sh -c "$(hold "$name")")
	wait_state "$LOW" RUNNING
	for i in $(seq 100); do [ "$(procs_with "$marker-$name\$" | wc -l)" -ge 2 ] && break; sleep 0.1; done
	HIGH=$(submit -N 2 -n 2 --share --priority 10 -J "high-$name" -- /bin/sh -c "$(hold "high-$name")")
	wait_state "$HIGH" RUNNING
	[ "$(job_state "$LOW")" = SUSPENDED ] || fail "job $LOW is $(job_state "$LOW") beside the high-priority job $HIGH"
	for node in node0 node1; do
		for i in $(seq 100); do grep -qx 'frozen 1' "$v2root/hec/$cname/$node/job.$LOW/cgroup.events" && break; sleep 0.05; done
		grep -qx 'frozen 1' "$v2root/hec/$cname/$node/job.$LOW/cgroup.events" ||
			fail "suspended job $LOW is not frozen on $node"
	done
	[ "$(procs_with "$marker-$name\$" | wc -l)" -ge 2 ] || fail "job $LOW's ranks are not there to be killed"
}

note "cancel of a SUSPENDED job"
suspend cancel
c=$LOW h=$HIGH
"$HEC" cancel "$c" || fail "cancel of suspended job $c failed"
wait_rc "$c" 130 30
[ "$(job_state "$c")" = CANCELLED ] || fail "job $c is $(job_state "$c")"
expect_gone "$c" "$marker-cancel\$" node0 node1
[ "$(job_state "$h")" = RUNNING ] || fail "job $h is $(job_state "$h") after job $c was cancelled"
rm "$TEST_DIR/hold-high-cancel"
wait_rc "$h" 0

note "time limit of a SUSPENDED job (its clock stops while suspended, as SLURM's)"
suspend limit -t 0:06
t=$LOW h=$HIGH
sleep 8 # past its 6 s limit by the wall clock, most of it suspended
[ "$(job_state "$t")" = SUSPENDED ] || fail "job $t is $(job_state "$t") after 8 s suspended: its limit counted suspended time"
s=$(job_field "$t" suspended_s)
[ "$s" -ge 6 ] || fail "job $t: suspended_s $s after 8 s suspended"
rm "$TEST_DIR/hold-high-limit"
wait_rc "$h" 0
wait_rc "$t" 124 30 # resumed: the rest of its 6 s, then the limit
[ "$(job_state "$t")" = TIMEOUT ] || fail "job $t is $(job_state "$t")"
job_field "$t" reason | grep -q "time limit" || fail "job $t: reason '$(job_field "$t" reason)'"
run=$(( $(job_field "$t" end_time) - $(job_field "$t" start_time) - $(job_field "$t" suspended_s) ))
[ "$run" -ge 5 ] && [ "$run" -le 9 ] || fail "job $t ran $run s of its 6 s limit (suspended $(job_field "$t" suspended_s) s)"
expect_gone "$t" "$marker-limit\$" node0 node1

note "node failure under a SUSPENDED job"
suspend nodefail
f=$LOW h=$HIGH
kill -9 "$(daemon_pid node1)"
wait_rc "$f" 125 60
[ "$(job_state "$f")" = NODE_FAIL ] || fail "job $f is $(job_state "$f")"
job_field "$f" reason | grep -q node1 || fail "job $f: reason '$(job_field "$f" reason)' does not name node1"
wait_rc "$h" 125
# node0's share of both jobs is gone at once; node1's waits for its agent
expect_gone "$f" "" node0
expect_gone "$h" "" node0
start_daemon node1 "$HECD"
wait_node_state node1 IDLE 20
expect_gone "$f" "$marker-nodefail\$" node0 node1
expect_gone "$h" "$marker-high-nodefail\$" node0 node1
echo "PASS: $TEST_NAME"
