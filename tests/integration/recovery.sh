#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# kill -9 of the controller loses no job: running jobs are found again, a job
# that ended while it was down is recorded (with the time it ended, as its
# agent saw it), pending jobs still run; what
# `hec gang set` changed holds after the restart, until hecctld.conf's gang
# settings change.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2
cd "$TEST_DIR"
"$HEC" gang set --slot 20 --max-share 3 >/dev/null || fail "hec gang set failed"
gang_is() {
	local g
	g=$("$HEC" gang --json | jq -c '[.gang.slot_ns, .gang.max_share, .gang.timeslice]')
	[ "$g" = "$1" ] || fail "$2: gang settings $g, not $1"
}
gang_is '[20000000,3,"gang"]' "after hec gang set"
touch "$TEST_DIR/hold1" "$TEST_DIR/hold2"
a=$(submit -N 1 -n 1 -J a -- /bin/sh -c "while [ -e $TEST_DIR/hold1 ]; do sleep 0.1; done; echo a-done")
d=$(submit -N 1 -n 1 -J d -- /bin/sh -c "while [ -e $TEST_DIR/hold2 ]; do sleep 0.1; done; echo d-done")
wait_state "$a" RUNNING
wait_state "$d" RUNNING
b=$(submit -N 2 -n 2 -J b -- "$MPI_CHECK")
sleep 0.3
[ "$(job_state "$b")" = PENDING ] || fail "job $b should wait for nodes"

aout=$(job_field "$a" output)
kill -9 "$(daemon_pid hecctld)"
sleep 0.3
"$HEC" queue >/dev/null 2>&1 && fail "queue answered with the controller dead"
rm "$TEST_DIR/hold1" # job a ends while nobody is listening
for i in $(seq 600); do [ -z "$(procs_with "$TEST_DIR/hold1")" ] && break; sleep 0.1; done
[ -z "$(procs_with "$TEST_DIR/hold1")" ] || fail "job $a has not ended 60 s after its hold file went"
grep -q a-done "$aout" || fail "job $a ended without its output"
a_ended=$(date +%s)
sleep 2 # its end is not the controller's return
start_daemon hecctld "$HECCTLD"

wait_state "$a" COMPLETED 20
[ "$(job_field "$a" end_time)" -le "$a_ended" ] ||
	fail "job $a, which ended by $a_ended, is recorded as ended at $(job_field "$a" end_time): when the controller heard of it"
gang_is '[20000000,3,"gang"]' "after the controller's kill -9 and restart"
[ "$(job_state "$d")" = RUNNING ] || fail "running job $d is $(job_state "$d") after the restart"
[ "$(job_state "$b")" = PENDING ] || fail "pending job $b is $(job_state "$b") after the restart"
[ "$(job_field "$b" name)" = b ] || fail "job $b lost its name"
rm "$TEST_DIR/hold2"
"$HEC" wait "$d" || fail "job $d failed after the restart: $(job_field "$d" reason)"
"$HEC" wait "$b" || fail "job $b failed: $(job_field "$b" reason)"
grep -q "result sum=3 expected=3 OK" <<<"$("$HEC" logs "$b")" || fail "job $b output wrong"
grep -q a-done <<<"$("$HEC" logs "$a")" || fail "job $a output lost"
n=$(submit -N 1 -n 1 -- /bin/true)
[ "$n" -gt "$b" ] || fail "new job id $n not above $b: ids reused after restart"
"$HEC" wait "$n" || fail "job $n failed"

# an operator's edit of hecctld.conf's gang settings is the newer word
ctl_restart_with "gang_slot = 30ms"
gang_is '[30000000,4,"gang"]' "after hecctld.conf's gang_slot changed"
ctl_restart_with
gang_is '[30000000,4,"gang"]' "after another restart"
echo "PASS: $TEST_NAME"
