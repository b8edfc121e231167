#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The controller dies between a catalog write and the message it stands for
# (issue #14; doc/design.md, "Crash windows"): at each fault point
# (HEC_FAULT, include/hec/fault.h) it is killed, restarted without the
# fault, and the job still ends as it should, its nodes IDLE again:
# - ctl.launch.after_db (RUNNING recorded, no LAUNCH out) and
#   ctl.launch.some_launched (a node's partition made, START not recorded):
#   requeued, then COMPLETED;
# - ctl.start.after_db (START recorded, not out; the issue's job stuck
#   RUNNING): the batch node says it never had START, the job is requeued
#   and COMPLETED; and again with the requeue itself killed
#   (ctl.requeue.after_db);
# - ctl.end.after_db (ENDING recorded, no KILL_JOB out): after a step's
#   exit, COMPLETED; after a cancel, CANCELLED, nothing of it left;
# - ctl.suspend.after_db / ctl.resume.after_db (a preempted job's state
#   recorded, no EPOCH out): the preemptor and the victim both COMPLETED;
# - ctl.ckpt.after_db (a checkpoint's pending row, no CKPT_PREPARE out):
#   aborted by the next controller ("the controller restarted during the
#   checkpoint"), the job runs on and COMPLETED.
# Then a new job runs.
# hec-test-timeout: 240
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v jq >/dev/null || skip "jq not installed"

cluster_up 2 --storage 2
cd "$TEST_DIR"
LOG="$HEC_DIR/log/hecctld.log"
OK_LINE="result sum=3 expected=3 OK"

# ctl_start [POINT]: the controller stopped and started again, with
# HEC_FAULT=POINT if given; back once both nodes are registered, or once it
# died again (at POINT, as died_at hecctld checks).
ctl_start() {
	local i
	restart_daemon hecctld "$HECCTLD" "${1:-}"
	for i in $(seq 150); do
		pid_alive "$(daemon_pid hecctld)" || return 0
		"$HEC" nodes --json 2>/dev/null |
			jq -e '[.nodes[] | select(.state == "IDLE" or .state == "ALLOCATED")] | length == 2' \
			>/dev/null && return 0
		sleep 0.2
	done
	fail "controller not back with both nodes registered: $("$HEC" nodes 2>&1)"
}

seen() { fault_seen hecctld "$1"; }

# submit_dying NAME ARGS...: submit job NAME (unique) to a controller that
# may die before it answers (the schedule pass after a request runs before
# the answer leaves); once the controller is back, by_name NAME is its id.
submit_dying() {
	local name=$1; shift
	"$HEC" submit -J "$name" "$@" >/dev/null 2>&1 || true
}
by_name() {
	local id
	id=$("$HEC" queue --all --json | jq -r --arg n "$1" '[.jobs[] | select(.name == $n) | .id] | if length == 1 then .[0] else empty end')
	[ -n "$id" ] || fail "no single job named $1: $("$HEC" queue --all 2>&1)"
	echo "$id"
}

nodes_idle() {
	local i
	for i in $(seq 100); do
		"$HEC" nodes --json | jq -e '.nodes | length == 2 and all(.state == "IDLE")' >/dev/null &&
			return 0
		sleep 0.1
	done
	fail "$1: nodes not IDLE: $("$HEC" nodes 2>&1)"
}

# mpi_case POINT [NEXT_POINT]: an MPI job on both nodes with the controller
# dying at POINT (and, restarted with NEXT_POINT, there next); it ends
# COMPLETED with its output.
mpi_case() {
	local point=$1 next=${2:-} b id
	note "$point${next:+, then $next}"
	ctl_start "$point"
	b=$(seen "$point")
	CASE=$((CASE + 1))
	submit_dying "mpi$CASE" -N 2 -n 2 -- "$MPI_CHECK"
	died_at hecctld "$point" "$b"
	if [ -n "$next" ]; then
		b=$(seen "$next")
		ctl_start "$next"
		died_at hecctld "$next" "$b"
	fi
	ctl_start
	id=$(by_name "mpi$CASE")
	wait_final "$id" COMPLETED
	grep -qx "$OK_LINE" <<<"$("$HEC" logs "$id")" || fail "job $id: output wrong: $("$HEC" logs "$id")"
	nodes_idle "$point"
	LAST=$id
}

CASE=0
mpi_case ctl.launch.after_db
grep -q "job $LAST: controller restarted during the launch; requeued" "$LOG" ||
	fail "job $LAST: no requeue after the launch was cut short"
mpi_case ctl.launch.some_launched
grep -q "job $LAST: controller restarted during the launch; requeued" "$LOG" ||
	fail "job $LAST: no requeue after the launch was cut short"
# the issue's case: START recorded and never sent
mpi_case ctl.start.after_db
grep -q "job $LAST: recorded as started, but node0 never had its START" "$LOG" ||
	fail "job $LAST: the lost START was not noticed"
[ "$(grep -c "job $LAST: batch step started" "$HEC_DIR/log/node0.log")" = 1 ] ||
	fail "job $LAST: its batch step did not start exactly once"
mpi_case ctl.start.after_db ctl.requeue.after_db
mpi_case ctl.end.after_db
[ "$(job_field "$LAST" exit_code)" = 0 ] || fail "job $LAST: exit code $(job_field "$LAST" exit_code)"

note "ctl.end.after_db by a cancel"
ctl_start ctl.end.after_db
b=$(seen ctl.end.after_db)
marker="hec-crash-$$"
id=$(submit -N 2 -n 2 -- /bin/sh -c "sleep 300; echo $marker")
wait_state "$id" RUNNING
for i in $(seq 100); do [ "$(procs_with "$marker" | wc -l)" -ge 2 ] && break; sleep 0.1; done
"$HEC" cancel "$id" >/dev/null 2>&1 # its answer may die with the controller
died_at hecctld ctl.end.after_db "$b"
ctl_start
wait_final "$id" CANCELLED 30
[ -z "$(procs_with "$marker")" ] || fail "job $id: processes left after its cancel: $(procs_with "$marker")"
nodes_idle "cancel"

note "ctl.suspend.after_db, then ctl.resume.after_db"
ctl_start
"$HEC" gang set --max-share 1 >/dev/null || fail "hec gang set --max-share 1 failed"
touch "$TEST_DIR/holdv"
v=$(submit -N 2 -n 2 --share -J victim -- /bin/sh -c "while [ -e $TEST_DIR/holdv ]; do sleep 0.1; done; echo victim-done")
wait_state "$v" RUNNING
ctl_start ctl.suspend.after_db
b=$(seen ctl.suspend.after_db)
submit_dying preemptor -N 2 -n 2 --share --priority 10 -- "$MPI_CHECK"
died_at hecctld ctl.suspend.after_db "$b"
b=$(seen ctl.resume.after_db)
ctl_start ctl.resume.after_db
died_at hecctld ctl.resume.after_db "$b" # (the preemptor ended, or the restart resumed the victim first)
ctl_start
p=$(by_name preemptor)
wait_final "$p" COMPLETED
wait_state "$v" RUNNING 30
rm "$TEST_DIR/holdv"
wait_final "$v" COMPLETED
grep -q victim-done <<<"$("$HEC" logs "$v")" || fail "job $v: output lost"
grep -qx "$OK_LINE" <<<"$("$HEC" logs "$p")" || fail "job $p: output wrong"
nodes_idle "suspend/resume"

note "ctl.ckpt.after_db"
ctl_start
touch "$TEST_DIR/holdc"
c=$(submit -N 2 -n 2 -J ckpt -- /bin/sh -c "while [ -e $TEST_DIR/holdc ]; do sleep 0.1; done")
wait_state "$c" RUNNING
ctl_start ctl.ckpt.after_db
wait_store s0 up
wait_store s1 up
b=$(seen ctl.ckpt.after_db)
"$HEC" ckpt "$c" >/dev/null 2>&1 # its answer dies with the controller
died_at hecctld ctl.ckpt.after_db "$b"
ctl_start
for i in $(seq 300); do
	"$HEC" ckpts "$c" 2>/dev/null | grep -q "the controller restarted during the checkpoint$" && break
	sleep 0.1
done
"$HEC" ckpts "$c" | grep -q "the controller restarted during the checkpoint$" ||
	fail "job $c: its cut-short checkpoint is not reported aborted: $("$HEC" ckpts "$c" 2>&1)"
[ "$(job_state "$c")" = RUNNING ] || fail "job $c: $(job_state "$c") after its checkpoint was aborted"
rm "$TEST_DIR/holdc"
wait_final "$c" COMPLETED
nodes_idle "checkpoint"

note "a new job runs"
n=$(submit -N 2 -n 2 -- "$MPI_CHECK")
wait_final "$n" COMPLETED 30
nodes_idle "last job"
echo "PASS: $TEST_NAME"
