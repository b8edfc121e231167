#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Snapshot and restore of vm partitions (the vm driver's snapshot and
# restore ops, driven by `hec snapshot`), state then verify:
# - a job counts in node0's guest, on 2 nodes; a snapshot saves both guests
#   while the count goes on;
# - a revert takes both guests back: the count starts again from where it
#   was at the snapshot, and the job ends COMPLETED;
# - a truncated snapshot is refused with QEMU's reason, and the guest runs on
#   as it was (nothing lost); reverting with no snapshot is a clear error.
. "$HEC_SRCDIR/tests/integration/lib.sh"

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (Debian package qemu-system-x86)"
ls /boot/vmlinuz-* >/dev/null 2>&1 || skip "no guest kernel in /boot (Debian package linux-image-amd64)"
[ -x /bin/busybox ] || skip "no /bin/busybox (Debian package busybox-static)"

cluster_up 2
cd "$TEST_DIR"

LAST=200
cat >count.sh <<EOF
#!/bin/sh
#HEC -N 2 -t 8:00 --partition vm --vcpus 1 --mem 256M
i=0
while [ \$i -lt $LAST ]; do i=\$((i + 1)); echo "tick \$i"; sleep 0.2; done
echo done
EOF

# the highest tick the job has printed so far
ticks() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^tick //p'; }
last_tick() { ticks "$1" | tail -n 1; }
# wait_tick ID N: until the job has printed tick N or more
wait_tick() {
	local i
	for i in $(seq 1 600); do
		[ "$(last_tick "$1")" -ge "$2" ] 2>/dev/null && return 0
		job_state "$1" | grep -q RUNNING || fail "job $1 is $(job_state "$1") before tick $2: $("$HEC" logs "$1" | tail -5)"
		sleep 0.2
	done
	fail "job $1 did not reach tick $2 (last: $(last_tick "$1"))"
}
# the ticks after the first step back, checked to count on by one
after_revert() { ticks "$1" | awk 'NR > 1 && $1 < prev && !seen { seen = 1 } seen { print } { prev = $1 }'; }

j=$(submit count.sh)
wait_tick "$j" 3

note "revert with no snapshot yet is refused, the job runs on"
expect_fail 1 'no snapshot here to revert to' "$HEC" snapshot --revert "$j"

note "snapshot: both guests save their state while the count goes on"
before=$(last_tick "$j")
out=$("$HEC" snapshot "$j") || fail "hec snapshot $j failed: $out"
echo "$out"
after=$(last_tick "$j")
for n in node0 node1; do
	grep -qE "^$n: saved [0-9.]+ [kMG]?B in [0-9.]+ s$" <<<"$out" || fail "no saved line for $n: $out"
done
dir=$(find "$HEC_DIR" -type d -name "job.$j" -path '*node0*' | head -1)
[ -s "$dir/snapshot" ] || fail "no snapshot file in node0's job directory ($dir)"
ls -l "$dir"/snapshot* || true
[ -z "$(ls "$dir" | grep 'snapshot.part')" ] || fail "a partial snapshot file was left: $(ls "$dir")"
echo "ticks: $before before the snapshot, $after once it was saved"

note "a truncated snapshot is refused on node0; its guest runs on as it was"
cp "$dir/snapshot" good.snap
size=$(stat -c %s good.snap)
# cut off in the middle of the guest's memory, as a write that stopped would
head -c $((size / 2)) good.snap >"$dir/snapshot"
wait_tick "$j" $((after + 3))
t0=$(last_tick "$j")
rc=0
out=$("$HEC" snapshot --revert "$j" 2>&1) || rc=$?
echo "$out"
[ "$rc" = 1 ] || fail "revert to a truncated snapshot exited $rc"
grep -q "^node0: error: the snapshot could not be loaded (.*QEMU.*); the guest runs on as it was" <<<"$out" ||
	fail "no QEMU reason for node0's truncated snapshot: $out"
wait_tick "$j" $((t0 + 5))
[ -z "$(after_revert "$j")" ] || fail "the count went back after a refused revert: $(after_revert "$j" | head -3)"
[ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") after the refused revert"
cp good.snap "$dir/snapshot"

note "revert: the guests go back to the snapshot, and count on from there"
high=$(last_tick "$j")
out=$("$HEC" snapshot --revert "$j") || fail "hec snapshot --revert $j failed: $out"
echo "$out"
for n in node0 node1; do
	grep -qE "^$n: reverted to [0-9.]+ [kMG]?B saved state in [0-9.]+ s$" <<<"$out" ||
		fail "no reverted line for $n: $out"
done
"$HEC" wait "$j" || fail "job $j after the revert: $(job_state "$j") ($(job_field "$j" reason)); $("$HEC" logs "$j" | tail -5)"
back=$(after_revert "$j")
first=$(head -n 1 <<<"$back")
echo "ticks: up to $high before the revert; the restored guest went on from $first"
[ -n "$first" ] || fail "the count never went back: the guest was not restored"
# The snapshot instant lies between the ticks seen around it.
[ "$first" -ge "$before" ] && [ "$first" -le $((after + 1)) ] ||
	fail "the count went back to $first, not to the snapshot's ($before..$((after + 1)))"
awk -v f="$first" -v last=$LAST 'NR == 1 && $1 != f { exit 1 } NR > 1 && $1 != p + 1 { exit 1 } { p = $1 } END { exit p != last }' <<<"$back" ||
	fail "after the revert the count did not run on by one to $LAST: $(tr '\n' ' ' <<<"$back" | head -c 400)"
"$HEC" logs "$j" | tail -n 1 | grep -qx done || fail "the job's last line is not 'done'"
note "job $j: COMPLETED after a snapshot, a refused and a good revert"
