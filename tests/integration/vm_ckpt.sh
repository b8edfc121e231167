#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Checkpoints and an automatic restart of a 2-node vm job, through the
# controller (doc/design.md, "Checkpoint and restart"), state then verify:
# - `hec ckpt --wait` prints each epoch once committed; `hec ckpts` lists
#   them with both guests' pauses; the third commit deletes the first
#   (--ckpt-keep 2) from the list and the servers (tombstone);
# - one byte flipped in a chunk of the newest checkpoint on every server,
#   then node0's QEMU killed with SIGKILL: the job restarts by itself
#   (--restart auto), the newest checkpoint fails its checksum on load, the
#   restart falls back to the previous one (said in `hec show`), and the
#   job completes: its count goes back once, to the fallback's position,
#   and runs on by one to the end.
# hec-test-timeout: 900
. "$HEC_SRCDIR/tests/integration/lib.sh"

command -v jq >/dev/null || skip "jq not installed"
need_guests

cluster_up 2 --storage 2
cd "$TEST_DIR"
LAST=300
cat >count.sh <<EOF
#!/bin/sh
#HEC -N 2 -t 15:00 --partition vm --vcpus 1 --mem 256M --restart auto --ckpt-keep 2
i=0
while [ \$i -lt $LAST ]; do i=\$((i + 1)); echo "tick \$i"; sleep 0.2; done
echo done
EOF

ticks() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^tick //p'; }
last_tick() { ticks "$1" | tail -n 1; }
wait_tick() {
	local i
	for i in $(seq 1 900); do
		[ "$(last_tick "$1")" -ge "$2" ] 2>/dev/null && return 0
		job_state "$1" | grep -q RUNNING || fail "job $1 is $(job_state "$1") before tick $2"
		sleep 0.2
	done
	fail "job $1 did not reach tick $2 (last: $(last_tick "$1"))"
}
ckpt() {
	local e
	e=$("$HEC" ckpt --wait "$1" 2>"$TEST_DIR/ckpt.err") || fail "hec ckpt --wait $1: $(cat "$TEST_DIR/ckpt.err")"
	[[ $e =~ ^[0-9]+$ ]] || fail "hec ckpt --wait $1 printed '$e'"
	echo "$e"
}
listed() { "$HEC" ckpts "$1" --json | jq -r '[.ckpts[].epoch] | map(tostring) | join(" ")'; }

j=$(submit count.sh)
wait_tick "$j" 3
note "three checkpoints; the first goes (--ckpt-keep 2)"
e1=$(ckpt "$j")
b1=$(last_tick "$j")
"$HEC" ckpts "$j"
"$HEC" ckpts "$j" --json | jq -e ".ckpts[0] | .epoch == $e1 and (.parts | length) == 2 and
	.parts[0].node == \"node0\" and .parts[1].node == \"node1\" and .bytes > 0" >/dev/null ||
	fail "checkpoint $e1 as listed: $("$HEC" ckpts "$j" --json)"
"$HEC" ckpts "$j" | grep -qE "^$e1 .* committed .*node0 [0-9.]+ ms, node1 [0-9.]+ ms$" ||
	fail "hec ckpts $j: $("$HEC" ckpts "$j")"
wait_tick "$j" $((b1 + 5))
e2=$(ckpt "$j")
b2=$(last_tick "$j")
wait_tick "$j" $((b2 + 5))
e3=$(ckpt "$j")
for i in $(seq 100); do [ "$(listed "$j")" = "$e2 $e3" ] && break; sleep 0.1; done
[ "$(listed "$j")" = "$e2 $e3" ] || fail "after 3 checkpoints with --ckpt-keep 2: listed '$(listed "$j")'"
[ -f "$HEC_DIR/store/s0/data/objects/$j/$e1/DELETED" ] || fail "s0 holds no tombstone of $j/$e1"
echo "epochs $e1 $e2 $e3 (ticks $b1, $b2 when the first two were committed)"

note "one byte flipped in $e3's stream p1 on every server; node0's QEMU killed"
flipped=0
for f in "$HEC_DIR"/store/s*/data/objects/"$j"/"$e3"/p1.1; do
	[ -f "$f" ] || continue
	flip_byte "$f" 4096 || fail "cannot flip a byte of $f"
	flipped=$((flipped + 1))
done
[ "$flipped" -ge 1 ] || fail "no chunk 1 of $j/$e3/p1 found on the servers"
qemu=$(pgrep -f -- "-name hec-job$j-node0 " | head -n 1)
[ -n "$qemu" ] || fail "no QEMU of job $j on node0"
high=$(last_tick "$j")
kill -9 "$qemu"
"$HEC" wait "$j" || fail "job $j after the restart: $(job_state "$j") ($(job_field "$j" reason))"
"$HEC" show "$j" | grep -E "Restart"
"$HEC" show "$j" --json | jq -e ".job.nrestarts == 1 and (.job.restarts | length) == 1 and
	.job.restarts[0].epoch == $e2 and (.job.restarts[0].reason | test(\"node0: QEMU was killed\")) and
	(.job.restarts[0].error | test(\"checkpoint $e3 did not load: node1: \"))" >/dev/null ||
	fail "job $j's restart record: $("$HEC" show "$j" --json | jq -c .job.restarts)"
"$HEC" ckpts "$j" --json | jq -e "[.ckpts[] | select(.epoch == $e2)][0].restored == 1" >/dev/null ||
	fail "checkpoint $e2 not counted as restored: $("$HEC" ckpts "$j" --json)"
back=$(ticks "$j" | awk 'NR > 1 && $1 < prev && !seen { seen = 1 } seen { print } { prev = $1 }')
first=$(head -n 1 <<<"$back")
echo "ticks: up to $high before the kill; the restored guests went on from $first"
[ -n "$first" ] && [ "$first" -le $((b2 + 1)) ] && [ "$first" -gt "$b1" ] ||
	fail "the count went back to '$first', not to checkpoint $e2's position (after $b1, by $b2)"
awk -v f="$first" -v last=$LAST 'NR == 1 && $1 != f { exit 1 } NR > 1 && $1 != p + 1 { exit 1 } { p = $1 } END { exit p != last }' <<<"$back" ||
	fail "after the restart the count did not run on by one to $LAST"
"$HEC" logs "$j" | tail -n 1 | grep -qx done || fail "the job's last line is not 'done'"
echo "PASS: $TEST_NAME"
