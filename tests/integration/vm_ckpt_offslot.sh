#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Off-slot checkpoints (doc/design.md, "Off-slot checkpoints"): two vm jobs
# time-share a node (--share, 400 ms slots), state then verify:
# - `hec ckpt --wait A` (off-slot, the default): A's guest is captured while
#   the gang has it switched out, and the capture takes nothing of A's own
#   slots (`hec ckpts --json`: switched_out, slot_pause_us 0);
# - `hec ckpt --wait --when in-slot A`: captured while it runs in its slot,
#   and its whole pause falls in that slot (slot_pause_us == pause_us > 0);
# - after both the guests still take turns (each gets about half a CPU over
#   4 s, not all of one: the captured guest went back to the gang);
# - A restarted from the off-slot checkpoint runs on from its count.
# VM_SWITCH (vm_ckpt_offslot_qmp.sh sets qmp): how the guests are switched;
# a frozen (cgroup) guest is stopped by QMP and thawed for its capture.
# hec-test-timeout: 900
VM_SWITCH=${VM_SWITCH:-cgroup}
. "$HEC_SRCDIR/tests/integration/lib.sh"

command -v jq >/dev/null || skip "jq not installed"
need_guests

cluster_up 1 --slot 400ms --max-share 2 --vm-switch "$VM_SWITCH" --storage 1
cd "$TEST_DIR"
cname=$(cluster_name)
v2root=$(v2_mount)
[ -n "$v2root" ] || skip "the test reads cgroup v2 cpu.stat; no cgroup2 mount"

# Each guest spins and prints a tick now and then: busy in every slot it gets.
cat >spin.sh <<'EOF'
#!/bin/sh
#HEC -N 1 -n 1 -t 15:00 --share --partition vm --vcpus 1 --mem 256M --ckpt-keep 6
n=0
while :; do n=$((n + 1)); [ $((n % 2000)) = 0 ] && echo "tick $n"; done
EOF
a=$(submit -J oa spin.sh)
b=$(submit -J ob spin.sh)
wait_state "$a" RUNNING 60
wait_state "$b" RUNNING 60
for i in $(seq 240); do
	st=$("$HEC" gang stats --json) || fail "gang stats failed"
	[ "$(jq '.stats.vm_switch | length' <<<"$st")" = 2 ] && break
	sleep 1
done
[ "$(jq '.stats.vm_switch | length' <<<"$st")" = 2 ] || fail "the two guests are not up: $st"
[ "$(jq -r '[.stats.vm_switch[].method] | unique | join(",")' <<<"$st")" = "$VM_SWITCH" ] ||
	fail "guests not switched by $VM_SWITCH: $st"

ticks() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^tick //p' | tail -n 1; }
# share J: the CPU job J's guest used over 4 s (10 slots), in percent of one CPU
share() {
	local f="$v2root/hec/$cname/node0/job.$1/cpu.stat" u0 u1
	u0=$(awk '$1 == "usage_usec" { print $2 }' "$f") || fail "no $f"
	sleep 4
	u1=$(awk '$1 == "usage_usec" { print $2 }' "$f")
	echo $(((u1 - u0) / 40000))
}
# both jobs' guests take turns: neither has the CPU all the time
turns() {
	local sa sb
	sa=$(share "$a") sb=$(share "$b")
	echo "CPU over 4 s: job $a $sa%, job $b $sb%"
	# (a guest out of the gang runs all the time: near 100% where the node
	# has two CPUs, and the two together more than one CPU)
	[ "$sa" -lt 75 ] && [ "$sb" -lt 75 ] && [ $((sa + sb)) -lt 115 ] ||
		fail "a guest runs outside its slots ($1): job $a $sa%, job $b $sb%"
	[ "$sa" -gt 10 ] && [ "$sb" -gt 10 ] || fail "a guest hardly runs ($1): job $a $sa%, job $b $sb%"
}
for i in $(seq 120); do [ -n "$(ticks "$a")" ] && [ -n "$(ticks "$b")" ] && break; sleep 1; done
[ -n "$(ticks "$a")" ] && [ -n "$(ticks "$b")" ] || fail "no ticks from the guests"
turns "before the checkpoints"

part() { "$HEC" ckpts "$a" --json | jq -c ".ckpts[] | select(.epoch == $1) | .parts[0]"; }

# (several of each: a T left at now + lead would land in either half of
# the cycle by chance, and pass one of them)
note "off-slot checkpoints (the default)"
for i in 1 2 3; do
	e1=$(timeout 300 "$HEC" ckpt --wait "$a") || fail "hec ckpt --wait $a failed"
	[[ $e1 =~ ^[0-9]+$ ]] || fail "hec ckpt --wait $a printed '$e1'"
	p1=$(part "$e1")
	echo "off-slot: $p1"
	jq -e '.switched_out == true and .slot_pause_us == 0' <<<"$p1" >/dev/null ||
		fail "the default checkpoint of time-sharing job $a was not captured off its slots: $p1"
done
t1=$(ticks "$a")

note "in-slot checkpoints"
for i in 1 2; do
	e2=$(timeout 300 "$HEC" ckpt --wait --when in-slot "$a") || fail "hec ckpt --wait --when in-slot $a failed"
	p2=$(part "$e2")
	echo "in-slot: $p2"
	jq -e '.switched_out == false and .pause_us > 0 and .slot_pause_us == .pause_us' <<<"$p2" >/dev/null ||
		fail "the in-slot checkpoint's pause is not all in job $a's slot: $p2"
done
"$HEC" ckpts "$a" | grep -q "off-slot" || fail "hec ckpts does not say off-slot: $("$HEC" ckpts "$a")"
expect_fail 2 "when: 'sometime' is not off-slot, in-slot or now" "$HEC" ckpt --when sometime "$a"
turns "after the checkpoints"

note "restart from the off-slot checkpoint $e1"
out=$("$HEC" restart "$a" --epoch "$e1" 2>&1) || fail "hec restart $a --epoch $e1: $out"
for i in $(seq 300); do
	[ "$(job_field "$a" 'restarts | length')" = 1 ] && [ "$(job_state "$a")" = RUNNING ] && break
	sleep 1
done
"$HEC" show "$a" --json | jq -e ".job.state == \"RUNNING\" and .job.restarts[0].epoch == $e1" >/dev/null ||
	fail "job $a not restarted from $e1: $("$HEC" show "$a" --json | jq -c '.job | {state, reason, restarts}')"
# the restored guest runs on: it prints again
n0=$("$HEC" logs "$a" | grep -c '^tick ')
for i in $(seq 300); do [ "$("$HEC" logs "$a" | grep -c '^tick ')" -gt "$n0" ] && break; sleep 1; done
t2=$(ticks "$a")
[ "$("$HEC" logs "$a" | grep -c '^tick ')" -gt "$n0" ] || fail "job $a prints nothing after its restart"
echo "job $a counted $t1 at checkpoint $e1, $t2 after its restart"
turns "after the restart"
"$HEC" cancel "$a" "$b" >/dev/null || fail "cancel failed"
echo "PASS: $TEST_NAME"
