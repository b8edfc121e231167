#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The daemons under valgrind through a job, a cancel, a bad frame and a clean
# shutdown: no invalid access, no leak.  (valgrind_vm.sh: vm partitions.)
. "$HEC_SRCDIR/tests/integration/lib.sh"
SENDRAW="$HEC_BUILDDIR/tests/tools/hec-sendraw"

valgrind_daemons
cluster_up 2
cd "$TEST_DIR"
id=$(submit -N 2 -n 2 -- "$MPI_CHECK")
"$HEC" wait "$id" || fail "job $id under valgrind: $(job_state "$id")"
c=$(submit -N 2 -n 2 -- /bin/sleep 300)
wait_state "$c" RUNNING 60
"$HEC" cancel "$c"
"$HEC" wait "$c"
[ "$(job_state "$c")" = CANCELLED ] || fail "job $c is $(job_state "$c") after cancel"
printf 'HC\x01\x0c\x00\x00\x00\x05{"a":' | "$SENDRAW" "unix:$HEC_DIR/hecctld.sock" --wait 2000 >/dev/null
"$HEC" cluster down || fail "cluster down failed"
valgrind_verdict 3
echo "PASS: $TEST_NAME"
