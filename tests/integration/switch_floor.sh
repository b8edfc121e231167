#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/switch-floor, the kernel's floor under bench/gang-overhead's dead
# time: bad arguments are refused (exit 2); by each mechanism the two
# spinners take turns at (nearly) every boundary and the dead time it
# reports lies between 0 and a slot; with no switching at all (a slot far
# longer than the run) there is nothing to judge and it says so (exit 1).
. "$HEC_SRCDIR/tests/integration/lib.sh"
FLOOR="$HEC_BUILDDIR/bench/switch-floor"
[ -x "$FLOOR" ] || fail "$FLOOR missing"
[ "$(id -u)" = 0 ] || skip "switch-floor moves processes between cgroups: run as root"
cd "$TEST_DIR"

expect_fail 2 "--mech" "$FLOOR" --mech nonsense
expect_fail 2 "--tasks" "$FLOOR" --tasks 0
expect_fail 2 "--tasks: '4294967297' is not a whole number from 1 to 64" "$FLOOR" --tasks 4294967297
expect_fail 2 "--slot-us" "$FLOOR" --slot-us 10
expect_fail 2 "--cpu: 'one' is not" "$FLOOR" --cpu one
expect_fail 2 "--seconds: '2x' is not" "$FLOOR" --seconds 2x

field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i+1); exit } }' <<<"$2"; }
for m in freeze thaw-first signal; do
	out=$("$FLOOR" --mech "$m" --tasks 2 --slot-us 2000 --seconds 0.4 --csv floor.csv 2>&1)
	rc=$?
	[ $rc = 77 ] && skip "$out"
	[ $rc = 0 ] || fail "switch-floor --mech $m failed (exit $rc): $out"
	echo "$out"
	sw=$(field switches "$out") judged=$(field judged "$out") held=$(field held "$out") p50=$(field dead_p50_us "$out")
	[ "$sw" -ge 150 ] || fail "$m: only $sw switches in 0.4 s of 2 ms slots"
	# every boundary hands the CPU over: the leaving spinner stops, the entering one starts
	[ $((judged * 10)) -ge $((sw * 9)) ] || fail "$m: only $judged of $sw switches seen in the spinners' gaps"
	# and the leaving one stays off for its slot out (with the switch broken,
	# Linux would share the CPU between both spinners within the slot)
	[ $((held * 10)) -ge $((judged * 9)) ] || fail "$m: the leaving spinner ran again within the slot after $((judged - held)) of $judged switches"
	awk -v d="$p50" 'BEGIN { exit !(d > 0 && d < 2000) }' || fail "$m: dead time p50 $p50 us is not within a slot"
done
[ "$(wc -l <floor.csv)" = 3 ] || fail "floor.csv has $(wc -l <floor.csv) lines, not 3"
# One boundary in 0.3 s of 1 s slots is none to judge within a run of the
# spinners: the program says it saw nothing rather than print zeros.
out=$("$FLOOR" --slot-us 1000000 --seconds 0.3 2>&1) && fail "no switches, yet exit 0: $out"
[ "$(field judged "$out")" = 0 ] || fail "no switches, yet judged: $out"
echo "PASS: $TEST_NAME"
