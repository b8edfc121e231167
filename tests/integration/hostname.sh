#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A batch node whose host name does not resolve: MPICH's proxies could never
# reach mpiexec and Hydra would wait forever.  The job must fail at once,
# saying why, and the cluster must stay usable.
if [ -z "${HEC_IN_UTS_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: hostname: needs root"; exit 77; }
	command -v unshare >/dev/null || { echo "SKIP: hostname: unshare (util-linux) missing"; exit 77; }
	# a private UTS namespace: only this test sees the odd host name
	exec env HEC_IN_UTS_NS=1 unshare --uts "$BASH" "$0" "$@"
fi
. "$HEC_SRCDIR/tests/integration/lib.sh"
name="hec-unresolvable-$$"
hostname "$name" || skip "cannot set a host name in a UTS namespace"
getent hosts "$name" >/dev/null && skip "$name resolves here"

cluster_up 2
cd "$TEST_DIR"
id=$(submit -N 2 -n 2 -- "$MPI_CHECK")
"$HEC" wait --timeout 30 "$id"
rc=$?
[ "$rc" != 3 ] || fail "job $id still not ended after 30 s: $(job_state "$id")"
[ "$(job_state "$id")" = FAILED ] || fail "job $id is $(job_state "$id")"
job_field "$id" reason | grep -q "'$name' does not resolve" ||
	fail "reason '$(job_field "$id" reason)' does not explain the host name"
[ "$(node_state node0)" = IDLE ] || fail "node0 is $(node_state node0) after the refused job"
echo "PASS: $TEST_NAME"
