#!/bin/bash
# The daemons under valgrind through a job, a cancel, a bad frame and a clean
# shutdown, and (where QEMU and a kernel are there) a job in vm partitions,
# one cancelled while its guests boot, and one snapshotted, reverted and
# cancelled during a snapshot: no invalid access, no leak.
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v valgrind >/dev/null || skip "valgrind not installed (apt-get install valgrind)"
SENDRAW="$HEC_BUILDDIR/tests/tools/hec-sendraw"

mkdir -p "$TEST_DIR/vg"
export HEC_DAEMON_WRAPPER="valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --trace-children=no --child-silent-after-fork=yes --log-file=$TEST_DIR/vg/%p.log"
cluster_up 2
cd "$TEST_DIR"
id=$(submit -N 2 -n 2 -- "$MPI_CHECK")
"$HEC" wait "$id" || fail "job $id under valgrind: $(job_state "$id")"
c=$(submit -N 2 -n 2 -- /bin/sleep 300)
wait_state "$c" RUNNING 60
"$HEC" cancel "$c"
"$HEC" wait "$c"
if command -v qemu-system-x86_64 >/dev/null && ls /boot/vmlinuz-* >/dev/null 2>&1; then
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
else
	note "no QEMU or guest kernel: the vm part is left out"
fi
printf 'HC\x01\x0c\x00\x00\x00\x05{"a":' | "$SENDRAW" "unix:$HEC_DIR/hecctld.sock" --wait 2000 >/dev/null
"$HEC" cluster down || fail "cluster down failed"
logs=$(grep -l "ERROR SUMMARY" "$TEST_DIR"/vg/*.log 2>/dev/null | wc -l)
[ "$logs" -ge 3 ] || fail "expected valgrind logs of 3 daemons, found $logs"
bad=0
for f in "$TEST_DIR"/vg/*.log; do
	if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
		echo "---- $f" >&2; cat "$f" >&2; bad=1
	fi
done
[ "$bad" = 0 ] || fail "valgrind found errors or leaks in the daemons"
echo "PASS: $TEST_NAME"
