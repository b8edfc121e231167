#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Consistency of coordinated checkpoints (a heavy test: `make check-heavy`):
# a deterministic MPI program on 2 vm nodes is checkpointed every second
# (`hec ckpt --wait`, one a second) until 20 are committed while its ranks
# exchange messages all the time; then the job is restarted from a sample
# of them (the first, two in between and the last) and each run to the end
# must print the checksum of an uninterrupted run.  A checkpoint that cut
# a message in two (an orphan: received in one guest's state, not yet sent
# in the other's) would hang the restored job or change its result.
# hec-test-timeout: 3000
. "$HEC_SRCDIR/tests/integration/lib.sh"

need_guests
PROG="$HEC_BUILDDIR/tests/mpi/ckpt_prog"
[ -x "$PROG" ] || fail "$PROG missing (make check builds it)"
N=${HEC_CKPT_COUNT:-20}
ITER=${HEC_CKPT_ITER:-1600}
SLEEP=15

cluster_up 2 --storage 2
cd "$TEST_DIR"

checksum() { "$HEC" logs "$1" | sed -n 's/^checksum \([0-9a-f]*\) .*/\1/p' | tail -n 1; }
committed() { "$HEC" ckpts "$1" --json | jq '.ckpts | length'; }

# sums ID: how many checksum lines the job has printed (one per run that ended)
sums() { "$HEC" logs "$1" | grep -c '^checksum ' || true; }

note "reference: the program uninterrupted, 2 ranks in cgroup partitions"
ref=$(submit -N 2 -n 2 -t 10:00 -- "$PROG" "$ITER" 0)
"$HEC" wait "$ref" || fail "reference job $ref: $(job_state "$ref")"
want=$(checksum "$ref")
[ -n "$want" ] || fail "no reference checksum"
echo "reference checksum $want ($ITER iterations)"

note "a 2-node vm job checkpointed every second until $N checkpoints are committed"
j=$(submit -N 2 -n 2 -t 60:00 --partition vm --vcpus 1 --mem 256M --ckpt-keep "$N" -- "$PROG" "$ITER" "$SLEEP")
wait_state "$j" RUNNING 300
for i in $(seq 1 1200); do
	"$HEC" logs "$j" | grep -q '^iter ' && break
	sleep 0.25
done
t0=$(date +%s)
for k in $(seq 1 "$N"); do
	t1=$(date +%s%N)
	[ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") after $((k - 1)) checkpoints (HEC_CKPT_ITER larger?)"
	"$HEC" ckpt --wait "$j" >/dev/null 2>"$TEST_DIR/ckpt.err" || fail "checkpoint $k of job $j: $(tail -n 1 "$TEST_DIR/ckpt.err")"
	# one a second: the next starts a second after this one did, or at once
	left=$(( (t1 + 1000000000 - $(date +%s%N)) / 1000000 ))
	if [ "$left" -gt 0 ]; then sleep "$(awk -v ms="$left" 'BEGIN { print ms / 1000 }')"; fi
done
[ "$(committed "$j")" = "$N" ] || fail "$(committed "$j") checkpoints listed, $N taken"
echo "$N checkpoints committed in $(($(date +%s) - t0)) s, the last at iteration $("$HEC" logs "$j" | sed -n 's/^iter //p' | tail -n 1)"
"$HEC" ckpts "$j"
"$HEC" wait "$j" || fail "job $j: $(job_state "$j") ($(job_field "$j" reason))"
[ "$(checksum "$j")" = "$want" ] || fail "the checkpointed run itself printed $(checksum "$j"), want $want"

epochs=$("$HEC" ckpts "$j" --json | jq -r '.ckpts[].epoch')
count=$(wc -l <<<"$epochs")
sample=$(awk -v n="$count" 'NR == 1 || NR == n || NR == int(n / 3) || NR == int(2 * n / 3)' <<<"$epochs" | sort -un)
for e in $sample; do
	note "restart from checkpoint $e, run to the end"
	before=$(sums "$j")
	"$HEC" restart "$j" --epoch "$e" >/dev/null || fail "hec restart $j --epoch $e failed"
	"$HEC" wait "$j" || fail "job $j from $e: $(job_state "$j") ($(job_field "$j" reason)); $("$HEC" logs "$j" | tail -3)"
	[ "$(sums "$j")" = $((before + 1)) ] || fail "the run from $e printed no checksum of its own"
	got=$(checksum "$j")
	[ "$got" = "$want" ] || fail "restart from $e ended with checksum $got, want $want"
	echo "from $e: checksum $got"
done
note "$count checkpoints taken every second; $(wc -w <<<"$sample") restored and run to the end: every checksum $want"
