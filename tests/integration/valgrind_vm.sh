#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The daemons under valgrind with vm partitions and a storage server: a
# job, one cancelled while its guests boot, and one checkpointed, restarted
# from its checkpoint and cancelled during a second checkpoint, then a
# clean shutdown: no invalid access, no leak.
. "$HEC_SRCDIR/tests/integration/lib.sh"
need_guests

valgrind_daemons
cluster_up 2 --storage 1
cd "$TEST_DIR"
v=$(submit -N 2 -n 2 -t 5:00 --partition vm --vcpus 1 -- "$HEC_BUILDDIR/examples/mpi_pi")
"$HEC" wait "$v" || fail "vm job $v under valgrind: $(job_state "$v") $(job_field "$v" reason)"
grep -q '^pi ~= 3.14159' <<<"$("$HEC" logs "$v")" || fail "vm job $v printed no pi"
w=$(submit -N 2 -n 2 --partition vm --vcpus 1 -- /bin/sleep 300)
wait_state "$w" RUNNING 60
sleep 3
"$HEC" cancel "$w"
"$HEC" wait "$w"
[ "$(job_state "$w")" = CANCELLED ] || fail "vm job $w is $(job_state "$w") after cancel"
# a checkpoint, a restart from it, and a checkpoint cut short by a cancel
x=$(submit -N 1 -t 5:00 --partition vm --vcpus 1 --mem 256M -- /bin/sleep 300)
for i in $(seq 1 120); do
	# (refused until the guest is up)
	e=$("$HEC" ckpt --wait "$x" 2>/dev/null) && break
	sleep 1
done
[[ $e =~ ^[0-9]+$ ]] || fail "vm job $x: no checkpoint under valgrind: $("$HEC" ckpt --wait "$x" 2>&1)"
"$HEC" restart "$x" || fail "vm job $x: no restart under valgrind"
for i in $(seq 1 180); do
	e2=$("$HEC" ckpt "$x" 2>/dev/null) && break
	sleep 1
done
[[ $e2 =~ ^[0-9]+$ ]] || fail "vm job $x: no checkpoint after its restart: $("$HEC" ckpt "$x" 2>&1)"
"$HEC" cancel "$x"
"$HEC" wait "$x"
[ "$(job_state "$x")" = CANCELLED ] || fail "vm job $x is $(job_state "$x") after cancel"
"$HEC" show "$x" --json | jq -e "(.job.restarts | length) == 1 and .job.restarts[0].epoch == $e" >/dev/null ||
	fail "vm job $x was not restarted from $e: $("$HEC" show "$x" --json | jq -c .job.restarts)"
"$HEC" ckpts "$x"
"$HEC" ckpts "$x" --json | jq -e ".last_error.epoch == $e2" >/dev/null ||
	fail "checkpoint $e2 was not cut short by the cancel: $("$HEC" ckpts "$x" --json)"
"$HEC" cluster down || fail "cluster down failed"
valgrind_verdict 4
echo "PASS: $TEST_NAME"
