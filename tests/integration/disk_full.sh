#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A full disk under the catalog: a submit is refused with SQLite's own
# reason ("database or disk is full"), not the rollback's that followed it;
# nothing committed is lost, the controller keeps running, and once there
# is room again a submit works.  A job that fills the disk of its output
# fails with the reason saying so, not "exit code 1" alone.  The cluster
# directory and the output's are small tmpfs of the test's own.
. "$HEC_SRCDIR/tests/integration/lib.sh"

mkdir -p "$HEC_DIR"
mount -t tmpfs -o size=4m,mode=0755 "hec-test-full" "$HEC_DIR" || skip "cannot mount a tmpfs (needs root and mount rights)"
mkdir -p "$TEST_DIR/outfs"
mount -t tmpfs -o size=1m,mode=0777 "hec-test-out" "$TEST_DIR/outfs" || fail "cannot mount a second tmpfs"
test_cleanup() {
	"$HEC" cluster down >/dev/null 2>&1
	umount "$HEC_DIR" 2>/dev/null || umount -l "$HEC_DIR"
	umount "$TEST_DIR/outfs" 2>/dev/null || umount -l "$TEST_DIR/outfs"
}

cluster_up 1
cd "$TEST_DIR"
first=$(submit -N 1 -n 1 -- /bin/true)
"$HEC" wait "$first" || fail "job $first failed"

# fill the file system (dd stops at ENOSPC)
dd if=/dev/zero of="$HEC_DIR/fill" bs=64k 2>/dev/null
[ "$(df --output=avail -B1 "$HEC_DIR" | tail -n 1)" -lt 65536 ] || fail "the tmpfs is not full: $(df -h "$HEC_DIR")"
out=$("$HEC" submit -N 1 -n 1 -- /bin/true 2>&1) && fail "a submit on a full disk succeeded: $out"
echo "$out"
grep -q "cannot record the job in the catalog: database or disk is full" <<<"$out" ||
	fail "the refusal does not say the disk is full: $out"
grep -q "rollback" <<<"$out" && fail "the refusal is the rollback's: $out"
kill -0 "$(daemon_pid hecctld)" || fail "hecctld died on a full disk"

# room again: the committed job is still there, and submits work
rm -f "$HEC_DIR/fill"
[ "$(job_state "$first")" = COMPLETED ] || fail "job $first is $(job_state "$first") after the full disk"
j=$(submit -N 1 -n 1 -- /bin/true)
"$HEC" wait "$j" || fail "job $j failed once there was room again"
[ "$j" = $((first + 1)) ] || fail "the refused submit took a job id: the next is $j, not $((first + 1))"

# a job whose output fills its disk: the reason says so
printf '#!/bin/sh\nhead -c 4000000 /dev/zero\n' >"$TEST_DIR/fill.sh"
chmod +x "$TEST_DIR/fill.sh"
f=$(submit -N 1 -n 1 -o "$TEST_DIR/outfs/fill.out" "$TEST_DIR/fill.sh")
"$HEC" wait "$f" && fail "job $f filled its disk and completed"
reason=$(job_field "$f" reason)
echo "job $f: $(job_state "$f"): $reason"
[ "$(job_state "$f")" = FAILED ] || fail "job $f is $(job_state "$f")"
grep -q "^exit code 1; node0: the file system of its output $TEST_DIR/outfs/fill.out is full$" <<<"$reason" ||
	fail "job $f's reason does not say its disk was full: $reason"
# and a job that fails with room to spare says nothing of the kind
rm -f "$TEST_DIR/outfs/fill.out"
k=$(submit -N 1 -n 1 -o "$TEST_DIR/outfs/k.out" -- /bin/sh -c 'exit 4')
"$HEC" wait "$k"
[ "$(job_field "$k" reason)" = "exit code 4" ] || fail "job $k's reason: $(job_field "$k" reason)"
echo "PASS: $TEST_NAME"
