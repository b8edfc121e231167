#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Gang scheduling claims of README.md and doc/design.md that gang.sh does not
# check:
# - every partition of a job runs in the same time slots on every node: on
#   both nodes at once, each runs in each slot of the epoch the job of that
#   slot's row (same_slots, claims_lib.sh);
# - a freeze not finished keeps the entering job frozen: once one job has
#   tasks the freezer cannot stop (stuck in a lookup a FUSE file system
#   never answers) and the dispatcher has found its freeze unfinished, the
#   other job of its nodes stays frozen, using no CPU, slot after slot;
#   released, they alternate.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/claims_lib.sh"

STUCKFS="$HEC_BUILDDIR/tests/tools/hec-stuckfs"
# slot 50 ms: not longer than the dispatcher's freeze wait (agent/gang.c)
cluster_up 2 --slot 50ms --max-share 2
cd "$TEST_DIR"
claims_setup

marker=hecclg$$
# a busy loop with breaks, until its hold file goes
busy() { echo "while [ -e $TEST_DIR/$1 ]; do i=0; while [ \$i -lt 500 ]; do i=\$((i + 1)); done; sleep 0.002; done; echo $marker-$1"; }

note "two 2-node share jobs: both nodes run the same job in every slot"
touch hold-a hold-b
a=$(submit -N 2 -n 2 --share -J ca -- /bin/sh -c "$(busy hold-a)")
b=$(submit -N 2 -n 2 --share -J cb -- /bin/sh -c "$(busy hold-b)")
wait_state "$a" RUNNING
wait_state "$b" RUNNING
g=$("$HEC" gang --json)
[ "$(jq '.gang.nslots' <<<"$g")" = 2 ] || fail "two 2-node share jobs on 2 nodes should take 2 slots: $g"
for i in $(seq 100); do [ "$(cg_pids node1 "$b" | wc -l)" -ge 1 ] && [ "$(cg_pids node1 "$a" | wc -l)" -ge 1 ] && break; sleep 0.1; done
same_slots 500 node0 node1
rm hold-a hold-b
wait_rc "$a" 0
wait_rc "$b" 0
expect_gone "$a" "$marker-hold-a" node0 node1
expect_gone "$b" "$marker-hold-b" node0 node1

note "a freeze that does not finish keeps the entering job frozen"
[ -c /dev/fuse ] || skip "no /dev/fuse: cannot make a task the freezer waits on"
mkdir mnt
"$STUCKFS" "$TEST_DIR/mnt" >stuckfs.out 2>&1 &
fuse_pid=$!
test_cleanup() {
	kill "$fuse_pid" 2>/dev/null
	wait "$fuse_pid" 2>/dev/null
	umount -l "$TEST_DIR/mnt" 2>/dev/null
	return 0
}
for i in $(seq 100); do grep -q ready stuckfs.out && break; sleep 0.1; done
grep -q ready stuckfs.out || skip "cannot mount a FUSE file system: $(cat stuckfs.out)"

touch hold-d
d=$(submit -N 2 -n 2 --share -J entering -- /bin/sh -c "$(busy hold-d)")
wait_state "$d" RUNNING
for i in $(seq 100); do [ "$(cg_pids node1 "$d" | wc -l)" -ge 1 ] && break; sleep 0.1; done
c=$(submit -N 2 -n 2 --share -J stuck -- /bin/sh -c "stat $TEST_DIR/mnt/rank\$PMI_RANK; echo $marker-released; sleep 1")
wait_state "$c" RUNNING
# Both ranks of c sit in the lookup, and c's freeze, asked for, stays unfinished.
# (each rank its own name: two lookups of one rank would not do, a rank still
# starting on a loaded node has not reached it)
in_lookup() { grep -qx 'lookup rank0' stuckfs.out && grep -qx 'lookup rank1' stuckfs.out; }
for i in $(seq 600); do in_lookup && break; sleep 0.1; done
in_lookup || fail "job $c's ranks never both reached the FUSE lookup: $(cat stuckfs.out)"
stuck_seen() { # NODE: c asked to freeze, and not frozen
	[ "$(freeze_req "$1" "$c")" = 1 ] && grep -qx 'frozen 0' "$v2root/hec/$cname/$1/job.$c/cgroup.events"
}
# The dispatcher does not wait for a freeze it has no reason to doubt: in
# job c's first slot out, job d runs (c sleeps in the kernel, using no
# CPU).  Found still not frozen when its slot comes again, c is stuck, and
# from its next freeze on d waits for it.
d_frozen() { grep -qx 'frozen 1' "$v2root/hec/$cname/$1/job.$d/cgroup.events"; }
for node in node0 node1; do
	seen=0 both=0
	for i in $(seq 300); do
		# (one look, judged once: the slot may change between two)
		if stuck_seen $node; then
			seen=1
			d_frozen $node && both=1 && break
		fi
		sleep 0.02
	done
	[ $seen = 1 ] || fail "job $c on $node: never seen asked to freeze and not frozen"
	[ $both = 1 ] || fail "job $d on $node is not frozen while job $c's freeze is unfinished"
done
usage() { sed -n 's/^usage_usec //p' "$v2root/hec/$cname/$1/job.$2/cpu.stat"; }
u0=$(usage node0 "$d") u1=$(usage node1 "$d")
# 4 s: 80 boundaries, 40 of them opening job d's row.
c_thawed=0 rounds=0
end=$((${EPOCHREALTIME/./} + 4000000))
while [ "${EPOCHREALTIME/./}" -lt $end ]; do
	for node in node0 node1; do
		[ "$(freeze_req $node "$d")" = 1 ] || fail "job $d thawed on $node while job $c's freeze was unfinished"
		[ "$(freeze_req $node "$c")" = 0 ] && c_thawed=$((c_thawed + 1))
	done
	rounds=$((rounds + 1))
	sleep 0.003
done
[ "$(usage node0 "$d")" = "$u0" ] && [ "$(usage node1 "$d")" = "$u1" ] ||
	fail "job $d used CPU while job $c's freeze was unfinished: usage_usec $u0 -> $(usage node0 "$d") on node0, $u1 -> $(usage node1 "$d") on node1"
echo "$rounds rounds: job $d asked frozen in all; job $c thawed in its own slots in $c_thawed"
[ "$c_thawed" -ge 1 ] || fail "job $c was never thawed in its slots: the schedule stopped"
grep -q "not frozen .* the next job waits for its turn" "$HEC_DIR/log/node0.log" ||
	fail "node0's log does not say the entering job waited"
waited=$("$HEC" gang stats --json | jq .stats.waited)
[ "$waited" -ge 1 ] 2>/dev/null || fail "'hec gang stats' counts '$waited' switches that waited for job $c's freeze"

note "released, the stuck job ends and the other runs again"
test_cleanup
wait_rc "$c" 0
grep -q "$marker-released" <<<"$("$HEC" logs "$c")" || fail "job $c did not go on after the release"
for node in node0 node1; do
	for i in $(seq 300); do [ "$(freeze_req $node "$d")" = 0 ] && break; sleep 0.05; done
	[ "$(freeze_req $node "$d")" = 0 ] || fail "job $d never thawed on $node after job $c ended"
done
rm hold-d
wait_rc "$d" 0
expect_gone "$c" "$marker-released" node0 node1
expect_gone "$d" "$marker-hold-d" node0 node1
echo "PASS: $TEST_NAME"
