#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Application-assisted checkpoints end to end (issue #13): the heat example
# (examples/heat, libhecckpt) as a 2-node x 2-rank proc job under real
# daemons, real MPICH and 2 storage servers.
# (a) a run never interrupted: its checksum is the reference;
# (b) --restart auto: `hec ckpt --wait` mid-run commits a checkpoint whose
#     one part is "app"; then node1's rank is killed with SIGKILL: the job
#     restarts by itself from that checkpoint (the program says it restored
#     that epoch at a step past 0), completes with the reference checksum,
#     and `hec show` lists the one restart; its output goes on after the
#     first run's;
# (c) --restart auto --ckpt-interval: once a checkpoint is committed,
#     node1's agent (the node without rank 0) is killed with SIGKILL: the
#     job restarts when the agent is back, from the checkpoint `hec show`
#     names, and completes with the reference checksum.
# hec-test-timeout: 900
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/heat_lib.sh"
command -v jq >/dev/null || skip "jq not installed"
cd "$TEST_DIR"

cluster_up 2 --storage 2
wait_store s0 up 15
wait_store s1 up 15
cname=$(cluster_name)
v2root=$(v2_mount)

heat_script heat.sh

nrestarts() { "$HEC" show "$1" --json | jq '.job.restarts | length'; }
# heat_pid NODE JOB: the heat rank in NODE's partition of JOB
heat_pid() {
	local f p
	for f in $(find "$v2root/hec/$cname/$1/job.$2" -name cgroup.procs 2>/dev/null); do
		for p in $(cat "$f"); do
			tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "^$HEAT " && { echo "$p"; return 0; }
		done
	done
	return 1
}
# finished JOB OUT: the job completed with the reference checksum
finished() {
	timeout 180 "$HEC" wait "$1" || fail "job $1: $(job_state "$1") ($(job_field "$1" reason)): $(tail -n 5 "$2")"
	[ "$(job_state "$1")" = COMPLETED ] || fail "job $1 is $(job_state "$1")"
	[ "$(checksum_of "$2" | wc -l)" = 1 ] || fail "job $1 printed $(checksum_of "$2" | wc -l) checksums: $(cat "$2")"
	[ "$(checksum_of "$2")" = "$ref" ] || fail "job $1: '$(checksum_of "$2")', uninterrupted: '$ref'"
}

note "(a) an uninterrupted run"
t0=$SECONDS
a=$(submit -o "$TEST_DIR/out.a" heat.sh)
timeout 300 "$HEC" wait "$a" || fail "job $a: $(job_state "$a") ($(job_field "$a" reason)): $(tail -n 5 out.a)"
ref=$(checksum_of out.a)
[ -n "$ref" ] || fail "job $a printed no checksum: $(cat out.a)"
grep -q "^restored" out.a && fail "job $a says it was restored: $(cat out.a)"
echo "job $a: $ref in $((SECONDS - t0)) s"

note "(b) hec ckpt --wait mid-run, then node1's rank killed with SIGKILL"
b=$(submit --restart auto --max-restarts 2 -o "$TEST_DIR/out.b" heat.sh)
wait_state "$b" RUNNING
wait_step out.b "$(( ${ARGS##* } / 5 ))"
e=$(timeout 120 "$HEC" ckpt --wait "$b") || fail "hec ckpt --wait $b: $e"
grep -q "^checkpoint $e at step " out.b || fail "job $b's program did not report checkpoint $e: $(cat out.b)"
at=$(sed -n "s/^checkpoint $e at step //p" out.b)
c=$("$HEC" ckpts "$b" --json)
echo "$c" | jq -c '.ckpts[] | {epoch, bytes, parts}'
echo "$c" | jq -e --argjson e "$e" '.ckpts | length == 1 and .[0].epoch == $e and .[0].bytes > 8388608 and
	(.[0].parts | length == 1 and .[0].part == "app")' >/dev/null || fail "job $b's checkpoints: $c"
[ "$(nrestarts "$b")" = 0 ] || fail "job $b restarted before the kill"
p=$(heat_pid node1 "$b") || fail "no heat rank of job $b in node1's partition"
kill -9 "$p"
echo "killed rank pid $p on node1 after checkpoint $e (step $at)"
finished "$b" out.b
[ "$(nrestarts "$b")" = 1 ] || fail "job $b: $(nrestarts "$b") restarts: $("$HEC" show "$b")"
"$HEC" show "$b" --json | jq -e --argjson e "$e" '.job.restarts[0].epoch == $e' >/dev/null ||
	fail "job $b's restart is not from checkpoint $e: $("$HEC" show "$b" --json | jq -c .job.restarts)"
"$HEC" show "$b" | grep -i restart
grep -qx "restored epoch $e at step $at" out.b || fail "job $b's program did not restore epoch $e at step $at: $(cat out.b)"
# the restarted step writes on after the first run's output
sed -n "/^checkpoint $e at step $at\$/,\$p" out.b | grep -qx "restored epoch $e at step $at" ||
	fail "job $b's output lost the first run's lines: $(cat out.b)"

note "(c) --ckpt-interval; node1's agent killed with SIGKILL"
c=$(submit --restart auto --max-restarts 2 --ckpt-interval 2s --ckpt-keep 100 -o "$TEST_DIR/out.c" heat.sh)
wait_state "$c" RUNNING
for i in $(seq 600); do
	[ "$("$HEC" ckpts "$c" --json | jq '.ckpts | length')" -ge 1 ] && break
	sleep 0.1
done
[ "$("$HEC" ckpts "$c" --json | jq '.ckpts | length')" -ge 1 ] || fail "job $c: no interval checkpoint in 60 s"
grep '^checkpoint' out.c
[ "$("$HEC" show "$c" --json | jq -r '.job.nodelist[0]')" = node0 ] || fail "job $c's first node is not node0"
kill -9 "$(daemon_pid node1)"
for i in $(seq 300); do [ "$(nrestarts "$c")" -ge 1 ] && break; sleep 0.1; done
[ "$(nrestarts "$c")" = 1 ] || fail "job $c did not restart after node1's agent was lost: $("$HEC" show "$c")"
"$HEC" show "$c" --json | jq -c '.job.restarts'
echo "job $c: $(job_state "$c") ($(job_field "$c" reason)); node1 $(node_state node1)"
start_daemon node1 "$HECD"
# back: IDLE, or ALLOCATED already if the restart took it before a poll saw IDLE
for i in $(seq 600); do
	case $(node_state node1) in IDLE | ALLOCATED) break ;; esac
	sleep 0.1
done
case $(node_state node1) in IDLE | ALLOCATED) ;; *) fail "node1 is $(node_state node1) 60 s after its agent started again" ;; esac
finished "$c" out.c
ec=$("$HEC" show "$c" --json | jq '.job.restarts[0].epoch')
grep -q "^restored epoch $ec at step " out.c || fail "job $c's program did not restore epoch $ec: $(cat out.c)"
"$HEC" ckpts "$c" --json | jq -e --argjson e "$ec" '[.ckpts[].epoch] | index($e) != null' >/dev/null ||
	fail "job $c restarted from $ec, not a listed checkpoint: $("$HEC" ckpts "$c" --json | jq -c '[.ckpts[].epoch]')"
"$HEC" cluster down >/dev/null || fail "cluster down"
echo "PASS: $TEST_NAME"
