#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The node agent dies between a change of a job's state and the word of it
# (issue #14; doc/design.md, "Crash windows"): at each of hecd's fault
# points (HEC_FAULT, include/hec/fault.h) it is killed, restarted without
# the fault, and the job still ends as a SLURM user would expect, its batch
# step run exactly once, its node IDLE again:
# - agent.launch.made (partition made, no job.json) and
#   agent.launch.after_save (job.json, no LAUNCHED): COMPLETED;
# - agent.start.before_spawn (START had, no step): requeued, then COMPLETED;
# - agent.start.after_spawn (the step runs, job.json does not say): the step
#   runs on (or ends while hecd is down) and its exit code is the job's;
# - agent.exit.before_save, agent.exit.after_save, agent.exit.acked (the
#   step's end, before it is kept, before JOB_EXIT, after EXIT_ACK) and
#   agent.kill.before_gone (partition removed, no JOB_GONE): the step's exit
#   code is the job's;
# - agent.ckpt.written (a program's checkpoint file taken, CKPT_CAPTURED not
#   out) and agent.ckpt.stored (its stream stored, CKPT_STORED not out):
#   the checkpoint fails, the job COMPLETED, its directory removed.
# Then a new job runs.
# hec-test-timeout: 240
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v jq >/dev/null || skip "jq not installed"

# (the node comes back well within its timeout; no gang slots: a step
# frozen when hecd died would stay frozen until it returns)
cluster_up 1 --storage 2 --node-timeout 30s --timeslice none
cd "$TEST_DIR"
LOG="$HEC_DIR/log/node0.log"

seen() { fault_seen node0 "$1"; }

# hecd_start [POINT]: hecd stopped (SIGTERM leaves jobs running) and started
# again, with HEC_FAULT=POINT if given; back once it registered.
hecd_start() {
	local i before
	before=$(grep -c "registered with controller" "$LOG")
	restart_daemon node0 "$HECD" "${1:-}"
	for i in $(seq 150); do
		[ "$(grep -c "registered with controller" "$LOG")" -gt "$before" ] && return 0
		sleep 0.2
	done
	fail "hecd not registered again: $(tail -n 3 "$LOG")"
}

node_idle() {
	local i
	for i in $(seq 100); do
		[ "$(node_state node0)" = IDLE ] && return 0
		sleep 0.1
	done
	fail "$1: node0 $(node_state node0), not IDLE"
}

# win POINT CODE [hold]: a batch step that counts its runs and exits with
# CODE, hecd dying at POINT; with hold, the step waits for its release
# file, removed once hecd is back.  The job ends with the step's exit code,
# its output complete, the step run once.
CASE=0
win() {
	local point=$1 code=$2 hold=${3:-} name b id want=COMPLETED i
	CASE=$((CASE + 1))
	name=w$CASE
	note "$point"
	printf '#!/bin/sh\necho run >>%s/runs.%s\nwhile [ -e %s/hold.%s ]; do sleep 0.1; done\necho out-%s\nexit %s\n' \
		"$TEST_DIR" "$name" "$TEST_DIR" "$name" "$name" "$code" >"$TEST_DIR/$name.sh"
	chmod +x "$TEST_DIR/$name.sh"
	[ -n "$hold" ] && touch "$TEST_DIR/hold.$name"
	b=$(seen "$point")
	hecd_start "$point"
	id=$(submit -N 1 -n 1 -J "$name" "$TEST_DIR/$name.sh")
	died_at node0 "$point" "$b"
	hecd_start
	if [ -n "$hold" ]; then
		for i in $(seq 100); do [ -s "$TEST_DIR/runs.$name" ] && break; sleep 0.1; done
		[ "$(job_state "$id")" = RUNNING ] || fail "job $id: $(job_state "$id") with its step held"
		# and once more: what the first restart found is kept
		hecd_start
		[ "$(job_state "$id")" = RUNNING ] || fail "job $id: $(job_state "$id") after a second restart"
		rm "$TEST_DIR/hold.$name"
	fi
	[ "$code" = 0 ] || want=FAILED
	wait_final "$id" "$want"
	[ "$(job_field "$id" exit_code)" = "$code" ] ||
		fail "job $id: exit code $(job_field "$id" exit_code) ($(job_field "$id" reason)), not its step's $code"
	grep -qx "out-$name" "$(job_field "$id" output)" ||
		fail "job $id: output incomplete: $(cat "$(job_field "$id" output)")"
	[ "$(grep -c run "$TEST_DIR/runs.$name")" = 1 ] ||
		fail "job $id: its step ran $(grep -c run "$TEST_DIR/runs.$name") times, not once"
	node_idle "$point"
	LAST=$id
}

said() { # JOB TEXT: node0's log says TEXT of JOB
	grep -qF "node0: job $1: $2" "$LOG" || fail "job $1: node0's log does not say '$2'"
}
win agent.launch.made 0
said "$LAST" "partition of a LAUNCH cut short by hecd's death removed"
win agent.launch.after_save 0
win agent.start.before_spawn 0
said "$LAST" "the previous hecd died before the batch step's spawn"
grep -q "job $LAST: recorded as started, but node0 never had its START" "$HEC_DIR/log/hecctld.log" ||
	fail "job $LAST: the lost START was not noticed"
win agent.start.after_spawn 3 hold
said "$LAST" "batch step of the previous hecd found (its pid was not kept)"
said "$LAST" "batch step of the previous hecd exited with 3 (its keeper's word)"
# (its step may end while hecd is down, or after: the same outcome)
win agent.start.after_spawn 4
said "$LAST" "batch step of the previous hecd found (its pid was not kept)"
win agent.exit.before_save 5
win agent.exit.after_save 6
win agent.exit.acked 7
win agent.kill.before_gone 0

# ckpt_win POINT: a program checkpoint of a proc job (hec-appclient in
# place of libhecckpt), hecd dying at POINT: the checkpoint fails with the
# node's loss as its reason; the next one is refused at once (the program's
# link went with hecd); the job runs on to COMPLETED, and nothing of it
# (its checkpoint directory with the program's file) is left on the node.
ckpt_win() {
	local point=$1 name b id out i
	CASE=$((CASE + 1))
	name=c$CASE
	note "$point"
	cat >"$name.script" <<EOS
send {"op":"hello","job":\$J,"ranks":1}
expect hello
sh touch $TEST_DIR/ready.$name
expect request
sh cp $TEST_DIR/data "\$D/ckpt-\$E.h5"
send {"op":"written","epoch":\$E,"path":"\$D/ckpt-\$E.h5","bytes":100000}
expect taken
EOS
	printf '#!/bin/sh
echo run >>%s/runs.%s
%s %s/%s.script >/dev/null 2>&1
while [ -e %s/hold.%s ]; do sleep 0.1; done
echo out-%s
' \
		"$TEST_DIR" "$name" "$CLIENT" "$TEST_DIR" "$name" "$TEST_DIR" "$name" "$name" >"$name.sh"
	chmod +x "$name.sh"
	touch "hold.$name"
	b=$(seen "$point")
	hecd_start "$point"
	id=$(submit -N 1 -n 1 -J "$name" "$TEST_DIR/$name.sh")
	for i in $(seq 300); do [ -e "ready.$name" ] && break; sleep 0.1; done
	[ -e "ready.$name" ] || fail "job $id: its program did not connect"
	out=$(timeout 60 "$HEC" ckpt --wait "$id" 2>&1) && fail "job $id: its checkpoint succeeded: $out"
	echo "hec ckpt --wait: $(tail -n 1 <<<"$out")"
	died_at node0 "$point" "$b"
	grep -q "node0" <<<"$out" || fail "job $id: the checkpoint's failure does not name node0: $out"
	hecd_start
	[ "$(job_state "$id")" = RUNNING ] || fail "job $id: $(job_state "$id") after hecd's restart"
	out=$(timeout 60 "$HEC" ckpt --wait "$id" 2>&1) && fail "job $id: a checkpoint without its program succeeded"
	grep -q "its program's link to the agent went with a restart of hecd" <<<"$out" ||
		fail "job $id: a checkpoint after hecd's restart failed with: $out"
	rm "hold.$name"
	wait_final "$id" COMPLETED
	grep -qx "out-$name" "$(job_field "$id" output)" ||
		fail "job $id: output incomplete: $(cat "$(job_field "$id" output)")"
	[ "$(grep -c run "runs.$name")" = 1 ] || fail "job $id: its step ran $(grep -c run "runs.$name") times"
	node_idle "$point"
	for i in $(seq 50); do [ -e "$STATE/job.$id" ] || break; sleep 0.1; done
	[ -e "$STATE/job.$id" ] && fail "job $id: left on node0: $(find "$STATE/job.$id")"
	"$HEC" ckpts "$id"
}
CLIENT="$HEC_BUILDDIR/tests/tools/hec-appclient"
STATE="$HEC_DIR/state/node0"
head -c 100000 /dev/urandom >data
wait_store s0 up
wait_store s1 up
ckpt_win agent.ckpt.written
ckpt_win agent.ckpt.stored

note "nothing left running; a new job runs"
"$HEC" queue --all --json | jq -e '[.jobs[] | select(.state == "RUNNING" or .state == "PENDING")] | length == 0' >/dev/null ||
	fail "jobs left: $("$HEC" queue --all 2>&1)"
n=$(submit -N 1 -n 1 -- /bin/echo last-job)
wait_final "$n" COMPLETED 30
node_idle "last job"
echo "PASS: $TEST_NAME"
