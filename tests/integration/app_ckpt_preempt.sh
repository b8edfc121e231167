#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A preemption waits for the victim's checkpoint (issue #13: hecckpt_need is
# 1 when "the job is about to be suspended by a higher-priority job"), under
# real daemons, real MPICH and 2 storage servers, max_share 1 so that a
# second --share job on a node must suspend the first:
# (a) the heat example (examples/heat) uninterrupted: the reference checksum;
# (b) heat as a low-priority --share job, then a --share job of priority 10
#     that needs one of its nodes: it waits ("waiting for job B to
#     checkpoint before preempting it") while the controller asks heat for a
#     checkpoint "before job H (priority 10) preempts it"; that checkpoint is
#     written before heat is SUSPENDED (controller log order) and committed;
#     H completes; heat resumes (no restart) and ends with the reference
#     checksum;
# (c) with preempt_ckpt_grace = 4s, a proc job whose program never calls
#     hecckpt_need: the preemptor waits the grace, no longer; the checkpoint
#     is aborted naming the grace, the victim is SUSPENDED, then resumes;
# (d) two victims needed at once, heat (1 node) and that job (the other):
#     heat is asked once, writes its checkpoint, stays unguarded (not asked
#     again) while the preemptor waits out the other's grace; then both are
#     SUSPENDED, resume and complete;
# (e) a job with neither --ckpt-interval nor --restart auto (it does not say
#     it checkpoints) is suspended at once, asked for nothing.
# (b)-(d) submit their victims with --restart auto.
# hec-test-timeout: 900
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/heat_lib.sh"
command -v jq >/dev/null || skip "jq not installed"
cd "$TEST_DIR"

cluster_up 2 --storage 2 --max-share 1
wait_store s0 up 15
wait_store s1 up 15
LOG="$HEC_DIR/log/hecctld.log"
[ -f "$LOG" ] || fail "no controller log at $LOG"

heat_script heat.sh

# line_of PATTERN: the number of the controller log's first line matching it
line_of() { grep -n -m 1 -- "$1" "$LOG" | cut -d: -f1; }
# watch_reasons JOB: every reason `hec show` gives JOB while it is PENDING, one a line
watch_reasons() {
	local i s
	for i in $(seq 1200); do
		s=$("$HEC" show "$1" --json | jq -r '.job.state + "|" + .job.reason')
		case $s in PENDING\|*) echo "${s#PENDING|}" ;; *) return 0 ;; esac
		sleep 0.05
	done
}

note "(a) an uninterrupted run"
a=$(submit --share -o "$TEST_DIR/out.a" heat.sh)
timeout 300 "$HEC" wait "$a" || fail "job $a: $(job_state "$a") ($(job_field "$a" reason)): $(tail -n 5 out.a)"
ref=$(checksum_of out.a)
[ -n "$ref" ] || fail "job $a printed no checksum: $(cat out.a)"

note "(b) a job of priority 10 preempts heat: heat is checkpointed first"
b=$(submit --share --restart auto -o "$TEST_DIR/out.b" heat.sh)
wait_state "$b" RUNNING
wait_step out.b "$(( ${ARGS##* } / 5 ))"
h=$(submit -N 1 -n 1 --share --priority 10 -o "$TEST_DIR/out.h" -- /bin/sh -c 'sleep 2; echo high done')
watch_reasons "$h" | sort -u >reasons.h
echo "job $h waited: $(tr '\n' ';' <reasons.h)"
timeout 120 "$HEC" wait "$h" || fail "high job $h: $(job_state "$h") ($(job_field "$h" reason))"
grep -qx "high done" out.h || fail "high job $h's output: $(cat out.h)"
grep -q "job $b: checkpoint [0-9]* before job $h (priority 10) preempts it" "$LOG" ||
	fail "no checkpoint of job $b asked before job $h preempts it: $(grep "job $b:" "$LOG")"
e=$(sed -n "s/.*job $b: checkpoint \([0-9]*\) before job $h (priority 10) preempts it.*/\1/p" "$LOG" | head -n 1)
wrote=$(line_of "job $b: checkpoint $e: the program wrote it")
susp=$(line_of "job $b: SUSPENDED (preempted by job $h)")
grep "job $b: \|job $h: " "$LOG" | grep -v "epoch " | sed 's/^/  log: /'
[ -n "$susp" ] || fail "job $b was never SUSPENDED by job $h"
[ -n "$wrote" ] || fail "job $b's program never wrote checkpoint $e"
[ "$wrote" -lt "$susp" ] || fail "job $b was SUSPENDED (log line $susp) before its checkpoint $e was written (line $wrote)"
grep -q "job $b: job $h (priority 10) waits up to 30 s for its checkpoint $e before suspending it" "$LOG" ||
	fail "job $h never waited for job $b's checkpoint $e"
grep -q "^checkpoint $e at step " out.b || fail "job $b's program did not report checkpoint $e: $(cat out.b)"
for i in $(seq 300); do
	"$HEC" ckpts "$b" --json | jq -e --argjson e "$e" '[.ckpts[].epoch] | index($e) != null' >/dev/null && break
	sleep 0.2
done
"$HEC" ckpts "$b" --json | jq -e --argjson e "$e" '.ckpts[] | select(.epoch == $e) | .parts[0].part == "app"' >/dev/null ||
	fail "checkpoint $e of job $b not committed: $("$HEC" ckpts "$b" --json | jq -c .)"
commit=$(line_of "job $b: checkpoint $e committed")
echo "job $b: checkpoint $e written at log line $wrote, SUSPENDED at $susp, committed at $commit"
timeout 180 "$HEC" wait "$b" || fail "job $b: $(job_state "$b") ($(job_field "$b" reason)): $(tail -n 5 out.b)"
[ "$(job_state "$b")" = COMPLETED ] || fail "job $b is $(job_state "$b")"
[ "$("$HEC" show "$b" --json | jq '.job.restarts | length')" = 0 ] || fail "job $b restarted: $("$HEC" show "$b")"
grep -q "job $b: resumed in slot" "$LOG" || fail "job $b never resumed"
grep -q "job $b: running again, guarded" "$LOG" || fail "job $b not guarded again after it resumed"
[ "$(checksum_of out.b)" = "$ref" ] || fail "job $b: '$(checksum_of out.b)', uninterrupted: '$ref'"

note "(c) the controller again with preempt_ckpt_grace = 4s; a victim that never calls hecckpt_need"
ctl_restart_with "preempt_ckpt_grace = 4s"
touch hold
l=$(submit -N 2 -n 2 --share --restart auto -o "$TEST_DIR/out.l" -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.05; done")
wait_state "$l" RUNNING
t0=$(date +%s.%N)
h2=$(submit -N 1 -n 1 --share --priority 10 -o "$TEST_DIR/out.h2" -- /bin/sh -c 'echo high2 done')
watch_reasons "$h2" | sort -u >reasons.h2
t1=$(date +%s.%N)
waited=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "job $h2 waited $waited s: $(tr '\n' ';' <reasons.h2)"
grep -qx "waiting for job $l to checkpoint before preempting it" reasons.h2 ||
	fail "job $h2's reasons while pending: $(cat reasons.h2)"
awk -v w="$waited" 'BEGIN { exit !(w >= 3.5) }' || fail "job $h2 waited $waited s, not the grace of 4 s"
awk -v w="$waited" 'BEGIN { exit !(w < 30) }' || fail "job $h2 waited $waited s: stuck past the grace of 4 s"
timeout 60 "$HEC" wait "$h2" || fail "high job $h2: $(job_state "$h2") ($(job_field "$h2" reason))"
grep -q "job $l: SUSPENDED (preempted by job $h2)" "$LOG" || fail "job $l was not suspended by job $h2"
grep -q "job $l: no checkpoint within preempt_ckpt_grace 4 s; job $h2 preempts it without one" "$LOG" ||
	fail "the controller did not say the grace ran out: $(grep "job $l:" "$LOG")"
"$HEC" ckpts "$l" --json | jq -e '.last_error.error | test("preempt_ckpt_grace 4 s")' >/dev/null ||
	fail "job $l's checkpoint was not aborted naming the grace: $("$HEC" ckpts "$l" --json | jq -c .)"
wait_state "$l" RUNNING 30
rm hold
timeout 60 "$HEC" wait "$l" || fail "job $l: $(job_state "$l") ($(job_field "$l" reason))"

note "(d) two victims: heat on node0 (checkpoints at once), the same loop on node1 (never)"
heat_script heat1.sh 1
touch hold
b1=$(submit --share --restart auto -o "$TEST_DIR/out.b1" heat1.sh)
l1=$(submit -N 1 -n 1 --share --restart auto -o "$TEST_DIR/out.l1" -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.05; done")
wait_state "$b1" RUNNING
wait_state "$l1" RUNNING
[ "$("$HEC" show "$b1" --json | jq -r '.job.nodelist[0]')" != "$("$HEC" show "$l1" --json | jq -r '.job.nodelist[0]')" ] ||
	fail "jobs $b1 and $l1 on the same node"
wait_step out.b1 "$(( ${ARGS##* } / 10 ))"
h3=$(submit -N 2 -n 2 --share --priority 10 -o "$TEST_DIR/out.h3" -- /bin/sh -c 'echo high3 done')
watch_reasons "$h3" | sort -u >reasons.h3
echo "job $h3 waited: $(tr '\n' ';' <reasons.h3)"
timeout 60 "$HEC" wait "$h3" || fail "high job $h3: $(job_state "$h3") ($(job_field "$h3" reason))"
grep "job $b1: \|job $l1: " "$LOG" | grep -v "epoch \|submitted\|starting\|launched" | sed 's/^/  log: /'
# heat's checkpoint is written long before the loop's grace ends: heat stays
# unguarded meanwhile (asked once), and both are suspended together
[ "$(grep -c "job $b1: checkpoint [0-9]* before job $h3 (priority 10) preempts it" "$LOG")" = 1 ] ||
	fail "job $b1 was not asked exactly once for a checkpoint before job $h3 preempts it"
e1=$(sed -n "s/.*job $b1: checkpoint \([0-9]*\) before job $h3 .*/\1/p" "$LOG")
wrote=$(line_of "job $b1: checkpoint $e1: the program wrote it")
susp=$(line_of "job $b1: SUSPENDED (preempted by job $h3)")
grace=$(line_of "job $l1: no checkpoint within preempt_ckpt_grace 4 s; job $h3 preempts it without one")
[ -n "$wrote" ] && [ -n "$susp" ] && [ -n "$grace" ] || fail "job $b1 wrote $e1 at log line '$wrote', SUSPENDED at '$susp'; job $l1's grace at '$grace'"
[ "$wrote" -lt "$grace" ] && [ "$grace" -lt "$susp" ] ||
	fail "job $b1 wrote $e1 at log line $wrote, was SUSPENDED at $susp; job $l1's grace ended at $grace"
grep -q "job $l1: SUSPENDED (preempted by job $h3)" "$LOG" || fail "job $l1 was not suspended by job $h3"
wait_state "$l1" RUNNING 30
rm hold
timeout 180 "$HEC" wait "$b1" || fail "job $b1: $(job_state "$b1") ($(job_field "$b1" reason)): $(tail -n 5 out.b1)"
checksum_of out.b1 >/dev/null || fail "job $b1 printed no checksum: $(tail -n 5 out.b1)"
timeout 60 "$HEC" wait "$l1" || fail "job $l1: $(job_state "$l1") ($(job_field "$l1" reason))"

note "(e) a job that does not say it checkpoints is suspended at once"
touch hold
l2=$(submit -N 2 -n 2 --share -o "$TEST_DIR/out.l2" -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.05; done")
wait_state "$l2" RUNNING
h4=$(submit -N 1 -n 1 --share --priority 10 -o "$TEST_DIR/out.h4" -- /bin/sh -c 'echo high4 done')
watch_reasons "$h4" | sort -u >reasons.h4
timeout 60 "$HEC" wait "$h4" || fail "high job $h4: $(job_state "$h4") ($(job_field "$h4" reason))"
grep -q "waiting for job $l2 to checkpoint" reasons.h4 && fail "job $h4 waited for job $l2, which has neither --ckpt-interval nor --restart auto"
grep -q "job $l2: checkpoint" "$LOG" && fail "job $l2 was asked for a checkpoint: $(grep "job $l2: checkpoint" "$LOG")"
grep -q "job $l2: SUSPENDED (preempted by job $h4)" "$LOG" || fail "job $l2 was not suspended by job $h4"
wait_state "$l2" RUNNING 30
rm hold
timeout 60 "$HEC" wait "$l2" || fail "job $l2: $(job_state "$l2") ($(job_field "$l2" reason))"
"$HEC" cluster down >/dev/null || fail "cluster down"
echo "PASS: $TEST_NAME"
