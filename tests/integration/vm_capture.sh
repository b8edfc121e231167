#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The capture side of a coordinated checkpoint (ckpt/agent_ckpt.c; the vm
# driver's capture, cancel and net_hold), state then verify:
# - two guests ping each other; `hec ckpt --wait` commits: each part has a
#   pause measured from QEMU's STOP and RESUME events and the guest image's
#   identity, each node held the job network and released it, and
#   `hec-store get` reads each stream back at the catalog's size (hec-store
#   checks every chunk's hash and the stream's);
# - node0's stream writer killed in mid-stream: the checkpoint fails with
#   the writer's reason, the guest runs on (a background snapshot broken
#   under QEMU 7.2 would leave it hanging: the agent drains the pipe), and
#   the next checkpoint commits.
. "$HEC_SRCDIR/tests/integration/lib.sh"

need_guests

cluster_up 2 --storage 2
cd "$TEST_DIR"

cat >ping.sh <<'EOS'
#!/bin/sh
#HEC -N 2 -t 10:00 --partition vm --vcpus 1 --mem 256M
i=0
while [ $i -lt 100000 ]; do
	i=$((i + 1))
	if ping -c 1 -W 1 node1 >/dev/null 2>&1; then echo "ok $i"; else echo "lost $i"; fi
	sleep 0.05
done
EOS

# the highest count the job has printed
last() { "$HEC" logs "$1" 2>/dev/null | awk '{ n = $2 } END { print n + 0 }'; }
# runs_on ID: the count goes on (by 5 or more within 20 s)
runs_on() {
	local a b i
	a=$(last "$1")
	for i in $(seq 100); do
		b=$(last "$1")
		[ "$b" -ge $((a + 5)) ] && return 0
		sleep 0.2
	done
	fail "job $1 stopped counting at $b ($(job_state "$1")): its guest hangs"
}

j=$(submit ping.sh)
for i in $(seq 300); do
	[ "$(last "$j")" -ge 3 ] && break
	[ "$(job_state "$j")" = RUNNING ] || [ "$(job_state "$j")" = PENDING ] || fail "job $j is $(job_state "$j")"
	sleep 1
done
[ "$(last "$j")" -ge 3 ] || fail "job $j never counted"

note "a checkpoint of both guests commits"
e=$("$HEC" ckpt --wait "$j") || fail "hec ckpt --wait $j: $e"
e=$(tail -n 1 <<<"$e")
parts=$("$HEC" ckpts --json "$j" | jq -c ".ckpts[] | select(.epoch == $e) | .parts")
echo "parts: $parts"
[ "$(jq length <<<"$parts")" = 2 ] || fail "checkpoint $e lists $(jq length <<<"$parts") parts"
for p in p0 p1; do
	part=$(jq -c ".[] | select(.part == \"$p\")" <<<"$parts")
	pause=$(jq -r .pause_us <<<"$part")
	# the vCPUs stood still, and not for a whole write of the RAM
	[ "$pause" -gt 0 ] && [ "$pause" -lt 1000000 ] || fail "$p: pause of $pause us"
	[ -n "$(jq -r '.image // empty' <<<"$part")" ] || fail "$p: no image identity: $part"
	bytes=$(jq -r .bytes <<<"$part")
	"$HEC_BUILDDIR/hec-store" get "$j" "$e" "$p" >"$p.stream" || fail "hec-store get $j $e $p failed"
	[ "$(stat -c %s "$p.stream")" = "$bytes" ] || fail "$p: read back $(stat -c %s "$p.stream") bytes, stored $bytes"
	[ "$(head -c 4 "$p.stream")" = QEVM ] || fail "$p: not a QEMU state stream"
	rm -f "$p.stream"
done
for n in node0 node1; do
	grep -E "job $j: checkpoint $e: captured .* vCPUs paused [0-9.]+ ms" "$HEC_DIR/log/$n.log" ||
		fail "$n: no captured line for checkpoint $e"
	grep -E "job $j: job network at the guest released after [0-9.]+ ms held: [0-9]+ frames dropped" "$HEC_DIR/log/$n.log" ||
		fail "$n: the job network was not held and released"
	grep -E "job $j: checkpoint $e: stored p[01]: [0-9]+ bytes" "$HEC_DIR/log/$n.log" || fail "$n: no stored line"
done
runs_on "$j"

note "the stream's writer killed in mid-stream: the checkpoint fails, the guest runs on"
rc=0
"$HEC" ckpt --wait "$j" >ckpt.out 2>&1 &
w=$!
writer=
for i in $(seq 500); do
	writer=$(pgrep -f -- "hec-store .*--key-file $HEC_DIR/.* put $j [0-9]+ p0\$" || true)
	[ -n "$writer" ] && break
	sleep 0.02
done
[ -n "$writer" ] || fail "no hec-store put for p0 appeared"
kill -STOP "$writer" # the capture begins and fills the pipe
# killed in mid-stream: once node0 has captured (a loaded host may take
# longer than the epoch's lead to get there), with the pipe full
e2=$(tr '\0' ' ' <"/proc/$writer/cmdline" | sed -n "s/.* put $j \([0-9]*\) p0 *$/\1/p")
[ -n "$e2" ] || fail "no epoch in the writer's command line: $(tr '\0' ' ' <"/proc/$writer/cmdline")"
for i in $(seq 300); do
	grep -q "job $j: checkpoint $e2: captured" "$HEC_DIR/log/node0.log" && break
	sleep 0.1
done
grep -q "job $j: checkpoint $e2: captured" "$HEC_DIR/log/node0.log" ||
	fail "node0 did not capture checkpoint $e2 within 30 s: $(cat ckpt.out)"
sleep 1
kill -KILL "$writer"
wait "$w" || rc=$?
cat ckpt.out
[ "$rc" = 1 ] || fail "hec ckpt --wait exited $rc after its writer was killed"
grep -q "node0: hec-store was killed by signal 9" ckpt.out || fail "no writer's reason: $(cat ckpt.out)"
grep -E "job $j: checkpoint [0-9]+ failed after the capture: hec-store was killed by signal 9" "$HEC_DIR/log/node0.log" ||
	fail "node0 did not log the failure"
runs_on "$j"
[ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") after the failed checkpoint"

note "the next checkpoint commits"
for i in $(seq 50); do
	out=$("$HEC" ckpt --wait "$j" 2>&1) && break
	# the capture cancelled above may still be writing to its end
	grep -qE "is still ending|still holds the job network" <<<"$out" || fail "hec ckpt --wait $j: $out"
	sleep 0.5
done
echo "$out"
[ "$("$HEC" ckpts --json "$j" | jq '.ckpts | length')" = 2 ] || fail "not 2 committed checkpoints: $("$HEC" ckpts "$j")"
runs_on "$j"
"$HEC" cancel "$j" >/dev/null
note "job $j: checkpointed, a writer lost in mid-stream, checkpointed again"
