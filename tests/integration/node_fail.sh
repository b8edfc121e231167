#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A node agent that dies: its jobs become NODE_FAIL (after the node timeout),
# the job's other partitions are cleaned; the agent's return cleans its own.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2 # node timeout 2 s
cd "$TEST_DIR"
marker="hecnf$$"
id=$(submit -N 2 -n 2 -- /bin/sh -c "sleep 3000; echo $marker")
wait_state "$id" RUNNING
for i in $(seq 100); do [ "$(procs_with "$marker" | wc -l)" -ge 2 ] && break; sleep 0.1; done
[ "$(procs_with "$marker" | wc -l)" -ge 2 ] || fail "job $id never started both ranks"

t0=$(date +%s%N)
kill -9 "$(daemon_pid node1)"
# (a 2 s node timeout: a minute is never; how long it took is a figure)
"$HEC" wait --timeout 60 "$id"
rc=$?
t1=$(date +%s%N)
[ "$rc" = 125 ] || fail "hec wait returned $rc for a node failure, expected 125 (3: not ended in 60 s)"
[ "$(job_state "$id")" = NODE_FAIL ] || fail "job $id is $(job_state "$id")"
job_field "$id" reason | grep -q node1 || fail "reason '$(job_field "$id" reason)' does not name node1"
echo "NODE_FAIL after $(( (t1 - t0) / 1000000 )) ms (node timeout 2000 ms)"
[ "$(node_state node1)" = DOWN ] || fail "node1 is $(node_state node1), expected DOWN"
# node0's share of the job is gone at once; node1's rank is orphaned for now
[ "$(procs_with "$marker" | wc -l)" -le 1 ] || fail "node0's processes of job $id remain"

start_daemon node1 "$HECD"
wait_node_state node1 IDLE 20
for i in $(seq 50); do [ -z "$(procs_with "$marker")" ] && break; sleep 0.1; done
[ -z "$(procs_with "$marker")" ] || fail "the restarted node1 agent left job $id's processes running"
# The cluster is whole again.
j=$(submit -N 2 -n 2 -- "$MPI_CHECK")
"$HEC" wait "$j" || fail "job $j after node1's return: $(job_state "$j") $(job_field "$j" reason)"
echo "PASS: $TEST_NAME"
