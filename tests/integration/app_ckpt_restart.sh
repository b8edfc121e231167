#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `hec restart` of a proc job from its application-assisted checkpoints
# (issue #13), on other nodes, past a corrupted checkpoint: the heat
# example (examples/heat) as a 2-node x 2-rank job on a 3-node cluster with
# 2 storage servers takes two checkpoints by `hec ckpt --wait` and runs to
# its end (its checksum is the reference).  Then one byte is flipped in a
# chunk of the newer checkpoint on every server, and `hec restart` puts the
# job on a pair of nodes whose first node is one it never ran on: the newer
# checkpoint fails its checksum when the agent fetches it, the restart falls
# back to the older one (said in `hec show`), the program restores that
# epoch at the step it was taken, and ends with the reference checksum.
# Then a restart whose program cannot load its data (another grid size):
# the job fails with the program's reason and the checkpoints stay, and the
# right program restarts from the same checkpoint again.
# hec-test-timeout: 600
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v jq >/dev/null || skip "jq not installed"
HEAT="$HEC_BUILDDIR/examples/heat/heat"
[ -x "$HEAT" ] || fail "$HEAT not built"
cd "$TEST_DIR"
STEPS=12000
ldd "$HEAT" | grep -q libasan && STEPS=3000 # (AddressSanitizer: ~10 times slower)
STEPS=${HEC_HEAT_STEPS:-$STEPS}

cluster_up 3 --storage 2
wait_store s0 up 15
wait_store s1 up 15

cat >heat.sh <<EOF
#!/bin/sh
#HEC -N 2
#HEC -n 2
#HEC -t 10:00
exec mpiexec -n 2 $HEAT \$(cat $TEST_DIR/nx) 1024 $STEPS
EOF
chmod +x heat.sh
echo 1024 >nx

checksums() { grep '^checksum ' out; }
steps_done() { sed -n 's/^step //p' out | tail -n 1; }
wait_step() {
	local i s
	for i in $(seq 900); do
		s=$(steps_done)
		[ -n "$s" ] && [ "$s" -ge "$1" ] && return 0
		sleep 0.1
	done
	fail "no step $1 in the output within 90 s: $(tail -n 3 out)"
}

note "two checkpoints of a run that then ends"
j=$(submit -o "$TEST_DIR/out" heat.sh)
wait_state "$j" RUNNING
wait_step $((STEPS / 5))
e1=$(timeout 120 "$HEC" ckpt --wait "$j") || fail "hec ckpt --wait $j: $e1"
at1=$(sed -n "s/^checkpoint $e1 at step //p" out)
[ -n "$at1" ] || fail "the program did not report checkpoint $e1: $(cat out)"
wait_step $((at1 + STEPS / 5))
e2=$(timeout 120 "$HEC" ckpt --wait "$j") || fail "hec ckpt --wait $j: $e2"
at2=$(sed -n "s/^checkpoint $e2 at step //p" out)
[ -n "$at2" ] && [ "$at2" -gt "$at1" ] || fail "checkpoint $e2 at step '$at2', $e1 at $at1"
timeout 300 "$HEC" wait "$j" || fail "job $j: $(job_state "$j") ($(job_field "$j" reason)): $(tail -n 5 out)"
ref=$(checksums)
[ "$(wc -l <<<"$ref")" = 1 ] && [ -n "$ref" ] || fail "job $j printed checksums '$ref'"
old=$("$HEC" show "$j" --json | jq -r '.job.nodelist | join(" ")')
echo "job $j: checkpoints $e1 (step $at1) and $e2 (step $at2) on $old; $ref"

note "one byte flipped in a chunk of $e2 on every server"
flipped=0
for f in "$HEC_DIR"/store/s*/data/objects/"$j"/"$e2"/app.0; do
	[ -f "$f" ] || continue
	flip_byte "$f" 4096 || fail "cannot flip a byte of $f"
	flipped=$((flipped + 1))
done
[ "$flipped" -ge 1 ] || fail "no chunk 0 of $j/$e2/app on the servers: $(ls -R "$HEC_DIR"/store/s*/data/objects/"$j" 2>&1 | head)"

note "hec restart on other nodes: $e2 fails its checksum, $e1 is used"
new=$(for n in node0 node1 node2; do grep -qw "$n" <<<"$old" || echo "$n"; done)
[ "$(wc -w <<<"$new")" = 1 ] || fail "not one node outside '$old': '$new'"
second=${old##* }
pair="$new,$second"
out=$("$HEC" restart "$j" --nodes "$pair" 2>&1) || fail "hec restart $j --nodes $pair: $out"
timeout 300 "$HEC" wait "$j" || fail "job $j after the restart: $(job_state "$j") ($(job_field "$j" reason)): $(tail -n 5 out)"
[ "$(job_state "$j")" = COMPLETED ] || fail "job $j is $(job_state "$j")"
ran=$("$HEC" show "$j" --json | jq -r '.job.nodelist | join(",")')
[ "$(tr ',' '\n' <<<"$ran" | sort | paste -sd,)" = "$(tr ',' '\n' <<<"$pair" | sort | paste -sd,)" ] ||
	fail "job $j ran on $ran, not on $pair"
"$HEC" show "$j" | grep -i -A3 restart
"$HEC" show "$j" --json | jq -e --argjson e1 "$e1" --argjson e2 "$e2" '.job.restarts[-1].epoch == $e1 and
	(.job.restarts[-1].error | test("checkpoint \($e2) did not load"))' >/dev/null ||
	fail "job $j's restart record: $("$HEC" show "$j" --json | jq -c .job.restarts)"
grep -qx "restored epoch $e1 at step $at1" out || fail "the program did not restore epoch $e1 at step $at1: $(cat out)"
grep -q "^restored epoch $e2 " out && fail "the program restored the corrupted checkpoint $e2"
[ "$(checksums | wc -l)" = 2 ] || fail "$(checksums | wc -l) checksum lines after one restart: $(cat out)"
[ "$(checksums | tail -n 1)" = "$ref" ] || fail "after the restart: '$(checksums | tail -n 1)', before: '$ref'"
echo "restarted on $ran from $e1: $(checksums | tail -n 1)"

note "a restart whose program cannot load the data (a different grid): clear error, nothing lost"
# The same 2 ranks with rows of 512 instead of 1024 doubles: every rank's
# count differs from the file's, hecckpt_restore refuses, the program exits
# 1 before any checkpoint of its own, and with no older checkpoint left to
# fall back to the job fails saying why.  Both checkpoints stay listed and
# the right grid restarts from the older one again.
echo 512 >nx
out=$("$HEC" restart "$j" --epoch "$e1" 2>&1) || fail "hec restart $j --epoch $e1: $out"
timeout 300 "$HEC" wait "$j" && fail "job $j completed with a grid its checkpoint does not have"
[ "$(job_state "$j")" = FAILED ] || fail "job $j is $(job_state "$j")"
"$HEC" show "$j" --json | jq -c '.job.restarts[-1]'
job_field "$j" reason
"$HEC" show "$j" --json | jq -e --argjson e1 "$e1" '.job.restarts[-1].epoch == $e1 and
	(.job.restarts[-1].error | test("did not load"))' >/dev/null ||
	fail "job $j's last restart record: $("$HEC" show "$j" --json | jq -c '.job.restarts[-1]')"
grep -q "rank's count\|count.*differ\|elements" out || fail "the program did not say why it could not restore: $(tail -n 5 out)"
"$HEC" ckpts "$j" --json | jq -e --argjson e1 "$e1" --argjson e2 "$e2" '[.ckpts[].epoch] | index($e1) != null and index($e2) != null' >/dev/null ||
	fail "job $j's checkpoints after the failed load: $("$HEC" ckpts "$j" --json | jq -c '[.ckpts[].epoch]')"
echo 1024 >nx
out=$("$HEC" restart "$j" --epoch "$e1" 2>&1) || fail "hec restart $j --epoch $e1 after the failed load: $out"
timeout 300 "$HEC" wait "$j" || fail "job $j: $(job_state "$j") ($(job_field "$j" reason)): $(tail -n 5 out)"
[ "$(checksums | tail -n 1)" = "$ref" ] || fail "after the failed load and a restart: '$(checksums | tail -n 1)', before: '$ref'"
"$HEC" cluster down >/dev/null || fail "cluster down"
echo "PASS: $TEST_NAME"
