#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Checkpoints under fire (a heavy test: `make check-heavy`): the controller,
# an agent and a storage server each killed with SIGKILL in a phase of a
# checkpoint of a running 2-node vm job (--restart auto, 2 storage servers,
# r = 2), state then verify after each:
# - controller: before T (right after the request), during the capture (one
#   agent stopped so that only the other captures), mid-stream, and while
#   the manifest is committed; it is started again each time;
# - agent: during the capture (stopped, then killed) and mid-stream; the
#   node is lost, the job restarts by itself on the other nodes;
# - storage server: mid-stream; started again afterwards.
# After every case: no pending checkpoint is ever listed, every listed
# checkpoint is one that `hec ckpt --wait` or the start-up clean-up
# committed, the job runs (its count goes on) or has restarted, and a new
# checkpoint commits; at the end the job restarts from its newest
# checkpoint and counts on by one to its end.
# hec-test-timeout: 2400
. "$HEC_SRCDIR/tests/integration/lib.sh"

command -v jq >/dev/null || skip "jq not installed"
need_guests
HECSTORED="$HEC_BUILDDIR/hecstored"

cluster_up 4 --storage 2
cd "$TEST_DIR"
LAST=3000
cat >count.sh <<EOF
#!/bin/sh
#HEC -N 2 -t 40:00 --partition vm --vcpus 1 --mem 256M --restart auto --max-restarts 10 --ckpt-keep 3
i=0
while [ \$i -lt $LAST ]; do i=\$((i + 1)); echo "tick \$i"; sleep 0.1; done
echo done
EOF

ticks() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^tick //p'; }
last_tick() { ticks "$1" | tail -n 1; }
# moving ID: the job's count goes on (RUNNING, 5 more ticks within 120 s)
moving() {
	local from i
	for i in $(seq 1 600); do
		[ "$(job_state "$1" 2>/dev/null)" = RUNNING ] && break
		sleep 0.2
	done
	from=$(last_tick "$1")
	for i in $(seq 1 600); do
		[ "$(job_state "$1")" = RUNNING ] && [ "$(last_tick "$1")" -ge $((from + 5)) ] 2>/dev/null && return 0
		sleep 0.2
	done
	fail "job $1 is not counting on ($(job_state "$1"): $(job_field "$1" reason); last tick $(last_tick "$1"), was $from)"
}
listed() { "$HEC" ckpts "$1" --json | jq -r '[.ckpts[].epoch] | map(tostring) | join(" ")'; }
# sane ID: only committed checkpoints are listed, each with both parts
sane() {
	local js
	js=$("$HEC" ckpts "$1" --json)
	jq -e '[.ckpts[] | select((.parts | length) != 2 or .bytes <= 0)] | length == 0' \
		<<<"$js" >/dev/null || fail "a checkpoint listed that is not whole and committed: $(jq -c .ckpts <<<"$js")"
}
good_ckpt() {
	local e
	e=$("$HEC" ckpt --wait "$1" 2>"$TEST_DIR/ckpt.err") || fail "hec ckpt --wait $1 after '$2': $(tail -n 2 "$TEST_DIR/ckpt.err")"
	echo "$e"
}
# phase ID PHASE: until the checkpoint under way is in PHASE
phase() {
	local i
	for i in $(seq 1 1200); do
		"$HEC" ckpts "$1" --json 2>/dev/null | jq -e --arg p "$2" \
			'.current != null and .current.phase == $p' >/dev/null && return 0
		sleep 0.05
	done
	fail "job $1: no checkpoint reached phase $2"
}
# ctl_kill: SIGKILL the controller and wait until it is gone (a new one
# refuses to start while the old one still holds the socket)
ctl_kill() {
	local p i
	p=$(daemon_pid hecctld)
	kill -9 "$p"
	for i in $(seq 1 200); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.05
	done
	fail "the controller (pid $p) is still there 10 s after SIGKILL"
}
ctl_start() {
	start_daemon hecctld "$HEC_BUILDDIR/hecctld"
	local i
	for i in $(seq 1 300); do
		"$HEC" nodes --json >/dev/null 2>&1 && [ "$(store_field s0 state)" = up ] && [ "$(store_field s1 state)" = up ] && return 0
		sleep 0.2
	done
	fail "the controller did not come back with both storage servers"
}
# after WHAT ID: the checks every case ends with
after() {
	sane "$2"
	moving "$2"
	good_ckpt "$2" "$1" >/dev/null
	sane "$2"
	echo "after $1: listed $(listed "$2")"
}

j=$(submit count.sh)
wait_state "$j" RUNNING 300
for i in $(seq 1 600); do [ "$(last_tick "$j")" -ge 3 ] 2>/dev/null && break; sleep 0.2; done
e0=$(good_ckpt "$j" start)
note "job $j: checkpoint $e0 committed; now the faults"

note "controller killed before T"
"$HEC" ckpt "$j" >/dev/null || fail "hec ckpt $j refused"
ctl_kill
ctl_start
after "controller killed before T" "$j"

note "controller killed during the capture (node1's agent stopped: only node0 captures)"
kill -STOP "$(daemon_pid node1)"
"$HEC" ckpt "$j" >/dev/null || fail "hec ckpt $j refused"
sleep 2
ctl_kill
kill -CONT "$(daemon_pid node1)"
ctl_start
after "controller killed during the capture" "$j"

note "controller killed mid-stream"
"$HEC" ckpt "$j" >/dev/null || fail "hec ckpt $j refused"
phase "$j" stream
ctl_kill
ctl_start
after "controller killed mid-stream" "$j"

note "controller killed while the manifest is committed"
"$HEC" ckpt "$j" >/dev/null || fail "hec ckpt $j refused"
phase "$j" commit
ctl_kill
ctl_start
# the commit's hec-store ran on by itself: the checkpoint is listed (the
# start-up clean-up found its manifest) or gone, never half
after "controller killed at the commit" "$j"

note "storage server s1 killed mid-stream"
"$HEC" ckpt "$j" >/dev/null || fail "hec ckpt $j refused"
phase "$j" stream
kill -9 "$(daemon_pid s1)"
for i in $(seq 1 600); do
	"$HEC" ckpts "$j" --json | jq -e '.current == null' >/dev/null && break
	sleep 0.2
done
sane "$j"
moving "$j"
start_store s1
wait_store s1 up 30
after "storage server killed mid-stream" "$j"

note "node1's agent killed mid-stream: the node is lost, the job restarts elsewhere"
r0=$("$HEC" show "$j" --json | jq '.job.restarts | length')
"$HEC" ckpt "$j" >/dev/null || fail "hec ckpt $j refused"
phase "$j" stream
victim=$("$HEC" show "$j" --json | jq -r '.job.nodelist[1]')
kill -9 "$(daemon_pid "$victim")"
for i in $(seq 1 900); do
	[ "$("$HEC" show "$j" --json | jq '.job.restarts | length')" -gt "$r0" ] && break
	sleep 0.2
done
[ "$("$HEC" show "$j" --json | jq '.job.restarts | length')" -gt "$r0" ] || fail "job $j did not restart after $victim was lost"
"$HEC" show "$j" --json | jq -c '.job.restarts[-1]'
start_daemon "$victim" "$HEC_BUILDDIR/hecd"
wait_node_state "$victim" IDLE 60
after "an agent killed mid-stream" "$j"

note "node's agent stopped during the capture, then killed"
r0=$("$HEC" show "$j" --json | jq '.job.restarts | length')
victim=$("$HEC" show "$j" --json | jq -r '.job.nodelist[0]')
kill -STOP "$(daemon_pid "$victim")"
"$HEC" ckpt "$j" >/dev/null || fail "hec ckpt $j refused"
sleep 1
kill -9 "$(daemon_pid "$victim")"
kill -CONT "$(daemon_pid "$victim")" 2>/dev/null
for i in $(seq 1 900); do
	[ "$("$HEC" show "$j" --json | jq '.job.restarts | length')" -gt "$r0" ] && break
	sleep 0.2
done
[ "$("$HEC" show "$j" --json | jq '.job.restarts | length')" -gt "$r0" ] || fail "job $j did not restart after $victim was lost"
start_daemon "$victim" "$HEC_BUILDDIR/hecd"
wait_node_state "$victim" IDLE 60
after "an agent killed during the capture" "$j"

note "the newest checkpoint restores: restart from it, count on by one to the end"
newest=$("$HEC" ckpts "$j" --json | jq -r '.ckpts[-1].epoch')
"$HEC" restart "$j" --epoch "$newest" >/dev/null || fail "hec restart $j --epoch $newest failed"
"$HEC" wait "$j" || fail "job $j from $newest: $(job_state "$j") ($(job_field "$j" reason))"
# after the last step back (the last restart's), the count goes on by one to the end
ticks "$j" | awk -v last=$LAST 'NR > 1 && $1 <= p { lb = NR; gap = 0 } NR > 1 && $1 > p + 1 { gap = 1 } { p = $1 }
	END { exit !(lb && !gap && p == last) }' || fail "the run from $newest did not count on by one to $LAST"
"$HEC" logs "$j" | tail -n 1 | grep -qx done || fail "the job's last line is not 'done'"
note "every fault left only whole committed checkpoints, the job ran on, and its newest checkpoint restored"
