#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# kill -9 of the controller loses no job: running jobs are found again, a job
# that ended while it was down is recorded, pending jobs still run.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2
cd "$TEST_DIR"
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
start_daemon hecctld "$HECCTLD"

wait_state "$a" COMPLETED 20
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
echo "PASS: $TEST_NAME"
