#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `hec cluster down` with jobs running "stops every daemon and job, no
# process left" (README.md); the agents kill all partitions themselves
# (doc/design.md, "Embedded cluster"), so down has no leftover to sweep.
# Jobs of every kind are up at once: two share jobs taking turns (one of
# them frozen at any instant), one SUSPENDED by a higher-priority job, and a
# pending one; each job's ranks leave a detached grandchild that ignores
# SIGTERM and SIGHUP.  Afterwards no process of the jobs or daemons and no
# cgroup of the cluster may remain.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/claims_lib.sh"

cluster_up 2 --slot 50ms --max-share 2
cd "$TEST_DIR"
claims_setup

marker=hecdown$$
touch hold
# job NAME: ranks that wait for the hold file, with a detached grandchild
# that ignores SIGTERM and SIGHUP and would live forever
job() {
	echo "trap '' TERM HUP; setsid /bin/sh -c \"trap '' TERM HUP; while :; do sleep 1; done; echo $marker-$1-orphan\" & while [ -e $TEST_DIR/hold ]; do sleep 0.05; done; echo $marker-$1"
}
# the detached grandchildren alive (only theirs start with the inner loop)
orphans() { pgrep -f -- "^/bin/sh -c trap '' TERM HUP; while :; do sleep 1; done; echo $marker" | wc -l; }
a=$(submit -N 2 -n 2 --share -J a -- /bin/sh -c "$(job a)")
b=$(submit -N 2 -n 2 --share -J b -- /bin/sh -c "$(job b)")
wait_state "$a" RUNNING
wait_state "$b" RUNNING
for i in $(seq 100); do [ "$(orphans)" -ge 4 ] && break; sleep 0.1; done
h=$(submit -N 2 -n 2 --share --priority 10 -J h -- /bin/sh -c "$(job h)")
wait_state "$h" RUNNING
sus=
for j in $a $b; do [ "$(job_state "$j")" = SUSPENDED ] && sus=$j; done
[ -n "$sus" ] || fail "no job SUSPENDED by the higher-priority job $h: a $(job_state "$a"), b $(job_state "$b")"
p=$(submit -N 1 -n 1 -J p -- /bin/sh -c "echo $marker-p-ran")
sleep 0.5
[ "$(job_state "$p")" = PENDING ] || fail "job $p is $(job_state "$p"), expected PENDING"
for i in $(seq 100); do [ "$(orphans)" -ge 6 ] && break; sleep 0.1; done
[ "$(orphans)" -ge 6 ] || fail "the jobs' detached processes did not all start ($(orphans) of 6)"
[ "$(freeze_req node0 "$sus")" = 1 ] || fail "suspended job $sus is not frozen on node0"
echo "jobs up: $a $b $h (one of $a $b suspended: $sus), $p pending; $(procs_with "$marker" | wc -l) processes carry the marker"

note "cluster down with all of them"
out=$("$HEC" cluster down 2>&1) || fail "cluster down failed: $out"
echo "$out"
[ "$out" = "cluster down" ] || fail "cluster down said more than 'cluster down' (the agents left partitions to sweep?): $out"
left=$(procs_with "$marker")
[ -z "$left" ] || fail "job processes left after cluster down: $(ps -o pid=,args= -p "$(tr '\n' ',' <<<"$left" | sed 's/,$//')")"
[ -z "$(procs_with "$TEST_DIR")" ] || fail "daemons left after cluster down: $(procs_with "$TEST_DIR")"
for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts); do
	[ ! -d "$m/hec/$cname" ] || fail "cgroups left after cluster down: $(find "$m/hec/$cname" -type d)"
done

echo "PASS: $TEST_NAME"
