#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A cable cut on emulated hosts (tests/hosts/hec-hosts): host1's link goes
# down while a 2-host MPI job runs.  The job ends NODE_FAIL within the
# controller's node_timeout, host1 shows DOWN, the controller serves on (a
# 1-host job on host0 completes).  host1's hecd never noticed (a silent
# link, no error on its connection) and its ranks spin on; once the link is
# back its connection breaks (the controller dropped it), it registers again
# and the controller, which ended the job, has it killed there: the ranks and
# the partition go, host1 is IDLE.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/hosts_lib.sh"
. "$HEC_SRCDIR/tests/integration/claims_lib.sh"

hosts_up 2 # node_timeout 2s, heartbeat 200 ms
claims_setup
cd "$TEST_DIR"
marker="$MPI_CHECK 987654321"
id=$(submit -N 2 -n 2 -J cut -- $marker)
wait_state "$id" RUNNING
for i in $(seq 100); do [ -n "$(cg_pids host1 "$id")" ] && break; sleep 0.1; done
[ -n "$(cg_pids host1 "$id")" ] || fail "job $id's rank never started on host1"

t0=${EPOCHREALTIME/./}
"$HOSTS" link "$HOSTS_DIR" 1 down || fail "cannot cut host1's link"
wait_final "$id" NODE_FAIL 10
took=$(((${EPOCHREALTIME/./} - t0) / 1000))
job_field "$id" reason | grep -qx "host1 not responding" ||
	fail "job $id's reason '$(job_field "$id" reason)' does not name host1"
# node_timeout 2 s, and 2.5 s for the liveness check's period, a heartbeat
# and the polling CLI on a loaded machine
[ "$took" -le 4500 ] || fail "job $id took ${took} ms to end NODE_FAIL (node_timeout 2s)"
[ "$(node_state host1)" = DOWN ] || fail "host1 is $(node_state host1) after the cut"
note "job $id NODE_FAIL ${took} ms after the cut"

# The controller serves on: a new job runs on host0.
id2=$(submit -N 1 -n 1 -- "$MPI_CHECK" 5)
wait_rc "$id2" 0 30
[ "$(job_field "$id2" 'nodelist | join(",")')" = host0 ] || fail "job $id2 ran on $(job_field "$id2" nodelist)"

# Cut off, host1's hecd knows nothing of the end: its rank still runs.
[ -n "$(cg_pids host1 "$id")" ] || fail "job $id's rank on host1 ended while the link was down"
grep -q "lost controller" "$HEC_DIR/log/host1.log" &&
	fail "host1's hecd saw its connection fail while cut: $(grep 'lost controller' "$HEC_DIR/log/host1.log")"

"$HOSTS" link "$HOSTS_DIR" 1 up || fail "cannot restore host1's link"
wait_node_state host1 IDLE 20
# (the job ended: "unknown" once it has left the controller's memory)
grep -qE "host1: holds a partition of job $id, which is (unknown|not running) there; killing it" \
	"$HEC_DIR/log/hecctld.log" ||
	fail "the controller did not have job $id's partition on host1 killed"
expect_gone "$id" "$marker" host1 host0
[ "$(job_state "$id")" = NODE_FAIL ] || fail "job $id is $(job_state "$id") after host1 came back"
# host1 runs jobs again
id3=$(submit -N 2 -n 2 -- "$MPI_CHECK" 5)
wait_rc "$id3" 0 30
echo "PASS: $TEST_NAME"
