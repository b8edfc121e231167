#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Cancel and time limit: the job's processes are gone, its partitions removed.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2
cd "$TEST_DIR"
cname=$(cluster_name)
v2root=$(v2_mount)
marker="hecmark$$"

id=$(submit -N 2 -n 2 -- /bin/sh -c "sleep 3000; echo $marker-c")
wait_state "$id" RUNNING
for i in $(seq 100); do [ "$(procs_with "$marker-c" | wc -l)" -ge 2 ] && break; sleep 0.1; done
[ "$(procs_with "$marker-c" | wc -l)" -ge 2 ] || fail "job $id never started its 2 ranks"
for node in node0 node1; do
	[ -d "$v2root/hec/$cname/$node/job.$id" ] || fail "no partition of job $id on $node"
done
"$HEC" cancel "$id" || fail "cancel $id failed"
"$HEC" wait "$id"
[ $? = 130 ] || fail "hec wait on a cancelled job did not exit 130"
[ "$(job_state "$id")" = CANCELLED ] || fail "job $id is $(job_state "$id")"
[ -z "$(procs_with "$marker-c")" ] || fail "processes of cancelled job $id remain"
for node in node0 node1; do
	[ ! -e "$v2root/hec/$cname/$node/job.$id" ] || fail "partition of job $id remains on $node"
done
expect_fail 1 "already|not active|ended" "$HEC" cancel "$id"
expect_fail 1 "no such job" "$HEC" cancel 99999

# A pending job can be cancelled too.
touch "$TEST_DIR/hold"
b=$(submit -N 2 -n 2 -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.1; done")
p=$(submit -N 1 -n 1 -- /bin/true)
sleep 0.3
[ "$(job_state "$p")" = PENDING ] || fail "job $p should be pending"
"$HEC" cancel "$p" || fail "cancel pending $p failed"
[ "$(job_state "$p")" = CANCELLED ] || fail "pending job $p is $(job_state "$p") after cancel"
rm "$TEST_DIR/hold"
"$HEC" wait "$b" || fail "job $b failed"

# Time limit: TIMEOUT, processes gone.
t=$(submit -N 2 -n 2 -t 0:02 -- /bin/sh -c "sleep 3000; echo $marker-t")
# (a 2 s limit: a minute is never; how long it ran is a figure)
"$HEC" wait --timeout 60 "$t"
rc=$?
[ $rc = 124 ] || fail "hec wait on a timed-out job exited $rc, not 124 (3: not ended in 60 s)"
[ "$(job_state "$t")" = TIMEOUT ] || fail "job $t is $(job_state "$t")"
start=$(job_field "$t" start_time) end=$(job_field "$t" end_time)
echo "job $t ended by its 2 s time limit: started $start, ended $end"
# never before its limit (whole seconds: at least 2 apart after 2 s or more)
[ $((${end%.*} - ${start%.*})) -ge 2 ] || fail "job $t ran from $start to $end with a 2 s limit"
[ -z "$(procs_with "$marker-t")" ] || fail "processes of timed-out job $t remain"
for node in node0 node1; do
	[ ! -e "$v2root/hec/$cname/$node/job.$t" ] || fail "partition of job $t remains on $node"
done
echo "PASS: $TEST_NAME"
