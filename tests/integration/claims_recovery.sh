#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Controller restart (kill -9) claims of doc/design.md that recovery.sh does
# not check, and what is left of the jobs afterwards:
# - "a RUNNING job whose partition is missing fails with reason 'partition
#   lost'": its partition on node1 is removed while the controller and
#   node1's agent are down;
# - "one whose node does not return within node_timeout is NODE_FAIL";
#   the job's partitions are gone (processes and cgroups) on the nodes that
#   are up at once, and on the returning node once its agent is back;
# - "the matrix is rebuilt from the catalog: running and suspended jobs keep
#   their nodes": the same rows after the restart, every node switching by
#   them, and a SUSPENDED job stays frozen on its own node with the same
#   processes, not moving to a node that frees up, until its node frees up.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/claims_lib.sh"

marker=hecrec$$
# ranks that wait for their hold file and print their start once
hold() { touch "$TEST_DIR/hold-$1"; echo "echo $marker-$1-start; while [ -e $TEST_DIR/hold-$1 ]; do sleep 0.05; done; echo $marker-$1"; }
ranks_up() { # JOB NAME N: N processes of the job are there (mpiexec and its ranks)
	for i in $(seq 200); do [ "$(procs_with "$marker-$2\$" | grep -c .)" -ge "$3" ] && return 0; sleep 0.1; done
	fail "job $1's $3 processes did not start"
}
restart_controller() {
	start_daemon hecctld "$HECCTLD"
	for i in $(seq 100); do "$HEC" queue >/dev/null 2>&1 && return 0; sleep 0.1; done
	fail "the restarted controller does not answer"
}

cluster_up 3
cd "$TEST_DIR"
claims_setup

note "partition lost on node1, node2 gone for good, while the controller was down"
# Job p runs on node0 only (no mpiexec): its node1 partition can go without
# ending the job, which then ends by the controller's reconciliation alone.
printf '#!/bin/sh\n#HEC -N 2 -n 2 -J lost\n/bin/sh -c "%s"\n' "$(hold lost)" >lost.sh
p=$(submit lost.sh)
q=$(submit -N 1 -n 1 -J nodefail -- /bin/sh -c "$(hold nodefail)")
wait_state "$p" RUNNING
wait_state "$q" RUNNING
ranks_up "$p" lost 1
ranks_up "$q" nodefail 2
[ "$(job_field "$p" 'nodelist | join(",")')" = node0,node1 ] || fail "job $p on $(job_field "$p" 'nodelist | join(",")')"
[ "$(job_field "$q" 'nodelist | join(",")')" = node2 ] || fail "job $q on $(job_field "$q" 'nodelist | join(",")')"
kill -9 "$(daemon_pid hecctld)" "$(daemon_pid node1)" "$(daemon_pid node2)"
# node1's share of job p disappears behind everybody's back
[ -n "$(cg_dirs node1 "$p")" ] || fail "job $p has no partition on node1"
for d in $(cg_dirs node1 "$p"); do rmdir "$d" || fail "cannot remove $d"; done
start_daemon node1 "$HECD"
restart_controller
wait_rc "$p" 1 60
[ "$(job_state "$p")" = FAILED ] || fail "job $p is $(job_state "$p")"
[ "$(job_field "$p" reason)" = "partition lost on node1" ] || fail "job $p: reason '$(job_field "$p" reason)'"
expect_gone "$p" "$marker-lost\$" node0 node1
wait_rc "$q" 125 60
job_field "$q" reason | grep -q node2 || fail "job $q: reason '$(job_field "$q" reason)' does not name node2"
[ "$(node_state node2)" = DOWN ] || fail "node2 is $(node_state node2), expected DOWN"
# node2's rank is an orphan until its agent returns and is told to kill it
[ -n "$(cg_dirs node2 "$q")" ] || fail "job $q's partition on the dead node2 vanished by itself"
start_daemon node2 "$HECD"
wait_node_state node2 IDLE 20
expect_gone "$q" "$marker-nodefail\$" node2
all=$(submit -N 3 -n 3 -- /bin/true)
wait_rc "$all" 0

note "the gang matrix after a restart: same rows, suspended job on its own node"
"$HEC" cluster down >/dev/null || fail "cluster down failed"
cluster_up 2 --slot 50ms --max-share 2
claims_setup
a=$(submit -N 2 -n 2 --share --priority 5 -J a -- /bin/sh -c "$(hold a)")
wait_state "$a" RUNNING
b=$(submit -N 1 -n 1 --share --priority 5 -J b -- /bin/sh -c "$(hold b)")
wait_state "$b" RUNNING
s=$(submit -N 1 -n 1 --share -J s -- /bin/sh -c "$(hold s)")
wait_state "$s" RUNNING
ranks_up "$s" s 2
h=$(submit -N 1 -n 1 --share --priority 10 -J h -- /bin/sh -c "$(hold h)")
wait_state "$h" RUNNING
ranks_up "$a" a 3
ranks_up "$b" b 2
ranks_up "$h" h 2
[ "$(job_state "$s")" = SUSPENDED ] || fail "job $s is $(job_state "$s") beside the high-priority job $h"
[ "$(job_field "$s" 'nodelist | join(",")')" = node1 ] || fail "job $s on $(job_field "$s" 'nodelist | join(",")'), expected node1"
rows=$("$HEC" gang --json | jq -c '[.gang.rows, .gang.suspended]')
echo "matrix: $rows"
# its long-lived processes (not the loop's sleeps)
spids_now() { procs_with "$marker-s\$" | sort -n | tr '\n' ' '; }
spids=$(spids_now)
[ -n "$spids" ] || fail "job $s has no processes on node1"

kill -9 "$(daemon_pid hecctld)"
sleep 0.5
restart_controller
for i in $(seq 100); do [ "$("$HEC" nodes --json | jq '[.nodes[] | select(.state != "DOWN" and .state != "UNKNOWN")] | length')" = 2 ] && break; sleep 0.1; done
for j in $a $b $h; do [ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") after the restart"; done
[ "$(job_state "$s")" = SUSPENDED ] || fail "job $s is $(job_state "$s") after the restart"
after=$("$HEC" gang --json | jq -c '[.gang.rows, .gang.suspended]')
[ "$after" = "$rows" ] || fail "matrix after the restart: $after; before: $rows"
same_slots 400 node0 node1
[ "$(freeze_req node1 "$s")" = 1 ] && grep -qx 'frozen 1' "$v2root/hec/$cname/node1/job.$s/cgroup.events" ||
	fail "suspended job $s is not frozen on node1 after the restart"
[ "$(spids_now)" = "$spids" ] || fail "job $s's processes changed: $spids -> $(spids_now)"

note "node0 frees up: the suspended job stays on node1, frozen"
rm "$TEST_DIR/hold-b"
wait_rc "$b" 0
for i in $(seq 20); do
	[ "$(job_state "$s")" = SUSPENDED ] || fail "job $s is $(job_state "$s") while job $h still holds node1"
	[ "$(freeze_req node1 "$s")" = 1 ] || fail "job $s thawed on node1 while job $h holds it"
	sleep 0.1
done
[ "$(job_field "$s" 'nodelist | join(",")')" = node1 ] || fail "job $s moved to $(job_field "$s" 'nodelist | join(",")')"
[ -z "$(cg_dirs node0 "$s")" ] || fail "job $s got a partition on node0"

note "node1 frees up: the suspended job resumes there, as it was"
rm "$TEST_DIR/hold-h"
wait_rc "$h" 0
wait_state "$s" RUNNING 30
for i in $(seq 100); do [ "$(freeze_req node1 "$s")" = 0 ] && break; sleep 0.05; done
[ "$(spids_now)" = "$spids" ] || fail "job $s's processes changed on resuming: $spids -> $(spids_now)"
rm "$TEST_DIR/hold-s" "$TEST_DIR/hold-a"
wait_rc "$s" 0
wait_rc "$a" 0
[ "$("$HEC" logs "$s" | grep -c "^$marker-s-start\$")" = 1 ] || fail "job $s started more than once: $("$HEC" logs "$s")"
for j in $a $s; do expect_gone "$j" "$marker-$(job_field "$j" name)\$" node0 node1; done
echo "PASS: $TEST_NAME"
