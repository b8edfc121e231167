#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The daemons under valgrind with vm partitions: a job, one cancelled while
# its guests boot, and one snapshotted, reverted and cancelled during a
# snapshot, then a clean shutdown: no invalid access, no leak.
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (Debian package qemu-system-x86)"
ls /boot/vmlinuz-* >/dev/null 2>&1 || skip "no guest kernel in /boot (Debian package linux-image-amd64)"
[ -x /bin/busybox ] || skip "no /bin/busybox (Debian package busybox-static)"

valgrind_daemons
cluster_up 2
cd "$TEST_DIR"
v=$(submit -N 2 -n 2 -t 5:00 --partition vm --vcpus 1 -- "$HEC_BUILDDIR/examples/mpi_pi")
"$HEC" wait "$v" || fail "vm job $v under valgrind: $(job_state "$v") $(job_field "$v" reason)"
grep -q '^pi ~= 3.14159' <<<"$("$HEC" logs "$v")" || fail "vm job $v printed no pi"
w=$(submit -N 2 -n 2 --partition vm --vcpus 1 -- /bin/sleep 300)
wait_state "$w" RUNNING 60
sleep 3
"$HEC" cancel "$w"
"$HEC" wait "$w"
[ "$(job_state "$w")" = CANCELLED ] || fail "vm job $w is $(job_state "$w") after cancel"
# snapshot, revert, and a snapshot cut short by a cancel
x=$(submit -N 1 -t 5:00 --partition vm --vcpus 1 --mem 256M -- /bin/sleep 300)
for i in $(seq 1 120); do
	"$HEC" snapshot "$x" >/dev/null 2>&1 && break
	sleep 1
done
"$HEC" snapshot "$x" || fail "vm job $x: no snapshot under valgrind"
"$HEC" snapshot --revert "$x" || fail "vm job $x: no revert under valgrind"
"$HEC" snapshot "$x" >/dev/null 2>&1 &
sleep 0.3
"$HEC" cancel "$x"
"$HEC" wait "$x"
wait
[ "$(job_state "$x")" = CANCELLED ] || fail "vm job $x is $(job_state "$x") after cancel"
"$HEC" cluster down || fail "cluster down failed"
valgrind_verdict 3
echo "PASS: $TEST_NAME"
