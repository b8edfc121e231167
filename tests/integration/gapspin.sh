#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/gapspin, the dead-time and overlap meter of bench/gang-overhead:
# its analysis on logs with known answers, a gap it must see (the program
# stopped by SIGSTOP), and two gang-shared jobs of it on a 2-node cluster
# (switches seen on both CPUs, the two jobs never running at once).
. "$HEC_SRCDIR/tests/integration/lib.sh"
GAPSPIN="$HEC_BUILDDIR/bench/gapspin"
[ -x "$GAPSPIN" ] || fail "$GAPSPIN missing"
cd "$TEST_DIR"

# Two jobs, two CPUs (ms): job 1 runs 0-1, 2.02-3, 4.05-5 on both; job 2
# 1.01-2, 3.03-4, 5.04-5.5 on CPU 0, but on CPU 1 from 2.995 (job 1's rank
# there stops at 2.99): dead times 20 30 50 (CPU 0), 20 5 50 (CPU 1); on
# the node of both CPUs job 2 starts at 2.995 while job 1 runs on CPU 0
# until 3: an overlap of 5 us.  Job 2's start and job 1's exit are no switches.
mkdir syn
log() { # FILE JOB RANK START END CPU GAPS...
	local f=$1 j=$2 r=$3 s=$4 e=$5 c=$6; shift 6
	echo "gapspin job $j rank $r start_ns $s end_ns $e cpu $c gap_ns 2000 gaps $(($# / 2)) lost 0" >"$f"
	while [ $# -gt 0 ]; do echo "$1 $2 $c $c" >>"$f"; shift 2; done
}
log syn/a0 1 0 0 5000000 0 1000000 2020000 3000000 4050000
log syn/a1 1 1 0 5000000 1 1000000 2020000 2990000 4050000
log syn/b0 2 0 1010000 5500000 0 2000000 3030000 4000000 5040000
log syn/b1 2 1 1010000 5500000 1 2000000 2995000 4000000 5040000
out=$("$GAPSPIN" --analyze syn/*) || fail "analyze failed: $out"
echo "$out"
grep -qx "cpu 0 switches 3 dead_p50_us 30.0 dead_p99_us 50.0 dead_max_us 50.0" <<<"$out" ||
	fail "CPU 0: expected 3 switches, dead 20 30 50 us"
grep -qx "cpu 1 switches 3 dead_p50_us 20.0 dead_p99_us 50.0 dead_max_us 50.0" <<<"$out" ||
	fail "CPU 1: expected 3 switches, dead 20 5 50 us"
grep -q "^gapspin jobs 2 switches 6 dead_p50_us 20.0 .* overlap_max_us -5.0 " <<<"$out" ||
	fail "each CPU its own node: expected 6 switches, p50 20 us, overlap max -5 us"
out=$("$GAPSPIN" --analyze --node 0-1 syn/*) || fail "analyze --node 0-1 failed: $out"
grep -q "^gapspin jobs 2 switches 6 .* overlap_max_us 5.0 node_switches 3 " <<<"$out" ||
	fail "one node of CPUs 0-1: expected an overlap of 5.0 us over 3 node switches: $out"

# A stopped rank is a gap: SIGSTOP for at least 0.3 s in a 3 s run.
mkdir live
HEC_JOB_ID=7 PMI_RANK=0 "$GAPSPIN" 3 live >/dev/null &
pid=$!
sleep 0.5
kill -STOP "$pid"
sleep 0.3
kill -CONT "$pid"
wait "$pid" || fail "gapspin failed"
awk 'NR > 1 && $2 - $1 >= 300000000 { found = 1 } END { exit !found }' live/gaps.7.0 ||
	fail "no gap of 0.3 s or more logged while the process was stopped: $(sort -k2n live/gaps.7.0 | tail -3)"

# Two gang-shared jobs of it, 5 ms slots: both CPUs switch between them,
# and no switch lets both run user code at once.
cluster_up 2 --slot 5
mkdir -m 777 gang
a=$(submit -N 2 -n 2 --share -- "$GAPSPIN" 1.5 "$TEST_DIR/gang")
b=$(submit -N 2 -n 2 --share -- "$GAPSPIN" 1.5 "$TEST_DIR/gang")
for id in "$a" "$b"; do
	"$HEC" wait --timeout 30 "$id" || fail "job $id: $(job_state "$id") $(job_field "$id" reason)"
done
out=$("$GAPSPIN" --analyze gang/gaps.*) || fail "analyze of the gang run failed: $out"
echo "$out"
for c in 0 1; do
	n=$(awk -v c="$c" '$1 == "cpu" && $2 == c { print $4 }' <<<"$out")
	[ "${n:-0}" -ge 40 ] || fail "CPU $c: ${n:-no} switches seen, expected about 2 per 10 ms of both jobs running"
done
ov=$(sed -n 's/.* overlap_max_us \([-0-9.]*\) .*/\1/p' <<<"$out")
awk -v o="$ov" 'BEGIN { exit !(o <= 0) }' || fail "both jobs ran user code at once on a node: overlap max $ov us"
echo "PASS: $TEST_NAME"
