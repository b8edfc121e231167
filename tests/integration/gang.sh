#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Gang scheduling: two 2-node --share jobs on the same nodes never run at
# once on a node and both finish right; a job cancelled while frozen leaves
# nothing behind; a high-priority job preempts (SUSPENDED, not killed); bad
# settings are refused; a node that stops answering mid-epoch is recovered;
# the dispatcher runs on its node's CPUs, or on gang_cpu.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2 --slot 50ms --max-share 2
cd "$TEST_DIR"
cname=$(cluster_name)
v2root=$(v2_mount)
[ -n "$v2root" ] || skip "gang test reads cgroup v2 cgroup.events; no cgroup2 mount"
events() { echo "$v2root/hec/$cname/$1/job.$2/cgroup.events"; }

ITERS=${HEC_GANG_TEST_ITERS:-2000000}
a=$(submit -N 2 -n 2 --share -J ga -- "$MPI_CHECK" $ITERS)
b=$(submit -N 2 -n 2 --share -J gb -- "$MPI_CHECK" $ITERS)
wait_state "$a" RUNNING
wait_state "$b" RUNNING
g=$("$HEC" gang --json)
[ "$(jq '.gang.nslots' <<<"$g")" = 2 ] || fail "two share jobs on 2 nodes should use 2 slots: $g"
[ "$(jq "[.gang.rows[].nodes.node0] | sort" -c <<<"$g")" = "[$a,$b]" ] || fail "matrix rows wrong: $g"
"$HEC" gang | grep -q "slot 50 ms" || fail "'hec gang' does not show the slot length"

# Sample both partitions on both nodes: never both running on one node.
alternation "$a" "$b" 300
"$HEC" wait "$a" || fail "job $a: $(job_state "$a") $(job_field "$a" reason)"
"$HEC" wait "$b" || fail "job $b: $(job_state "$b") $(job_field "$b" reason)"
# mpi_check verifies its own sum (3 x N(N+1)/2 for 2 ranks) and says OK
for j in $a $b; do
	grep -qx "result sum=$((3 * ITERS * (ITERS + 1) / 2)) expected=$((3 * ITERS * (ITERS + 1) / 2)) OK" \
		<<<"$("$HEC" logs "$j")" || fail "job $j result wrong: $("$HEC" logs "$j" | grep '^result')"
done
st=$("$HEC" gang stats --json) || fail "gang stats failed"
[ "$(jq '.stats.boundaries' <<<"$st")" -gt 10 ] || fail "gang stats saw no switching boundaries: $st"
"$HEC" gang stats | grep -q "^skew" || fail "'hec gang stats' prints no skew line"

# The dispatcher runs on its node's own CPUs (never another node's, whose
# ranks it would stop at every boundary), or on gang_cpu (below).
gang_cpus() { # NODE: the CPUs its hecd's dispatcher thread may run on
	local t
	for t in /proc/"$(daemon_pid "$1")"/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = hec-gang ] &&
			sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status"
	done
}
node_cpus() { sed -n 's/^cpus *= *//p' "$HEC_DIR/$1.conf"; }
for node in node0 node1; do
	[ -n "$(node_cpus $node)" ] || fail "$node.conf names no cpus"
	[ "$(gang_cpus $node)" = "$(node_cpus $node)" ] ||
		fail "$node's gang dispatcher may run on CPUs '$(gang_cpus $node)', not the node's '$(node_cpus $node)'"
done

# Cancel a job while it is frozen: nothing of it remains.
marker="hecgang$$"
c=$(submit -N 2 -n 2 --share -- /bin/sh -c "while :; do :; done; echo $marker")
wait_state "$c" RUNNING
d=$(submit -N 2 -n 2 --share -- /bin/sh -c "while :; do :; done; echo $marker-d")
wait_state "$d" RUNNING
# A newcomer runs first in the epoch its start makes (row 0), not after
# every job that was there before it.
first_row() { "$HEC" gang --json | jq -c '.gang.rows[0].nodes'; }
[ "$(first_row)" = "{\"node0\":$d,\"node1\":$d}" ] || fail "newcomer $d is not in the first row: $("$HEC" gang --json | jq -c .gang.rows)"
# The turned rows are the catalog's too: a controller killed and started
# again rebuilds the same matrix.
kill -9 "$(daemon_pid hecctld)"
sleep 0.5
start_daemon hecctld "$HECCTLD"
for i in $(seq 100); do "$HEC" queue >/dev/null 2>&1 && break; sleep 0.1; done
for i in $(seq 100); do
	[ "$("$HEC" nodes --json | jq '[.nodes[] | select(.state != "DOWN" and .state != "UNKNOWN")] | length')" = 2 ] && break
	sleep 0.1
done
[ "$(job_state "$c")$(job_state "$d")" = RUNNINGRUNNING ] || fail "jobs $c, $d are $(job_state "$c"), $(job_state "$d") after the controller's restart"
[ "$(first_row)" = "{\"node0\":$d,\"node1\":$d}" ] ||
	fail "after the controller's restart, job $d is not in the first row: $("$HEC" gang --json | jq -c .gang.rows)"
seen=0
for i in $(seq 400); do run_r node0 "$c"; [ "$R" = 0 ] && { seen=1; break; }; sleep 0.005; done
[ $seen = 1 ] || fail "job $c never seen frozen"
"$HEC" cancel "$c" || fail "cancel $c"
"$HEC" wait "$c"
[ "$(job_state "$c")" = CANCELLED ] || fail "job $c is $(job_state "$c")"
[ -z "$(pgrep -f -- "echo $marker\$" || true)" ] || fail "processes of cancelled frozen job $c remain"
for node in node0 node1; do [ ! -e "$(events $node "$c")" ] || fail "partition of $c remains on $node"; done
"$HEC" cancel "$d"
"$HEC" wait "$d"

# Preemption: max-share 2; a third, higher-priority job suspends the lowest.
touch "$TEST_DIR/hold"
loop="while [ -e $TEST_DIR/hold ]; do sleep 0.05; done"
l1=$(submit -N 2 -n 2 --share -J low1 -- /bin/sh -c "$loop")
l2=$(submit -N 2 -n 2 --share -J low2 -- /bin/sh -c "$loop")
wait_state "$l1" RUNNING
wait_state "$l2" RUNNING
touch "$TEST_DIR/hold-high"
h=$(submit -N 2 -n 2 --share --priority 10 -J high -- /bin/sh -c "while [ -e $TEST_DIR/hold-high ]; do sleep 0.05; done")
wait_state "$h" RUNNING
[ "$(first_row)" = "{\"node0\":$h,\"node1\":$h}" ] || fail "preemptor $h is not in the first row: $("$HEC" gang --json | jq -c .gang.rows)"
s1=$(job_state "$l1"); s2=$(job_state "$l2")
{ [ "$s1" = SUSPENDED ] && [ "$s2" = RUNNING ]; } || { [ "$s1" = RUNNING ] && [ "$s2" = SUSPENDED ]; } ||
	fail "after the high-priority job: low1 $s1, low2 $s2 (one should be SUSPENDED)"
sus=$l2; [ "$s1" = SUSPENDED ] && sus=$l1
"$HEC" queue | grep -q SUSPENDED || fail "'hec queue' does not show SUSPENDED"
job_field "$sus" reason | grep -q "$h" || fail "suspended job's reason '$(job_field "$sus" reason)' does not name job $h"
for i in $(seq 20); do
	run_r node0 "$sus"
	[ "$R" = 0 ] || fail "suspended job $sus ran on node0"
	sleep 0.03
done
rm "$TEST_DIR/hold-high"
"$HEC" wait "$h" || fail "high job $h failed"
wait_state "$sus" RUNNING 10
[ "$(first_row)" = "{\"node0\":$sus,\"node1\":$sus}" ] || fail "resumed job $sus is not in the first row: $("$HEC" gang --json | jq -c .gang.rows)"
rm "$TEST_DIR/hold"
"$HEC" wait "$l1" || fail "low1 failed: $(job_field "$l1" reason)"
"$HEC" wait "$l2" || fail "low2 failed: $(job_field "$l2" reason)"

# Bad settings: refused with one line; the cluster keeps working.
expect_fail 2 "slot" "$HEC" gang set --slot 0
expect_fail 2 "slot" "$HEC" gang set --slot -5
expect_fail 2 "slot" "$HEC" gang set --slot 99999999
expect_fail 2 "slot" "$HEC" gang set --slot 10us
expect_fail 2 "timeslice" "$HEC" gang set --timeslice sometimes
expect_fail 2 "nothing" "$HEC" gang set
expect_fail 2 "max-share" "$HEC" gang set --max-share 0
"$HEC_BUILDDIR/tests/tools/hec-sendraw" --frame 2 '{"op":"gang_set","slot_us":500}' |
	"$HEC_BUILDDIR/tests/tools/hec-sendraw" "unix:$HEC_DIR/hecctld.sock" | grep -q "ERROR .*slot_us" ||
	fail "a 500 us slot was not refused"
# (that a user other than root is refused is auth.sh's)
"$HEC" gang set --slot 20 || fail "gang set --slot 20 failed"
[ "$(jq '.gang.slot_ns' <<<"$("$HEC" gang --json)")" = 20000000 ] || fail "slot not changed to 20 ms"

# A node that stops answering mid-epoch: bounded recovery, never a wedge.
e=$(submit -N 2 -n 2 --share -- /bin/sh -c "sleep 300; echo $marker-e")
f=$(submit -N 2 -n 2 --share -- /bin/sh -c "sleep 300; echo $marker-f")
wait_state "$e" RUNNING
wait_state "$f" RUNNING
kill -STOP "$(daemon_pid node1)"
# (a 2 s node timeout: a minute is a wedge)
"$HEC" wait --timeout 60 "$e"
[ "$(job_state "$e")" = NODE_FAIL ] || fail "job $e is $(job_state "$e") after node1 stopped answering"
"$HEC" wait --timeout 60 "$f"
[ "$(job_state "$f")" = NODE_FAIL ] || fail "job $f is $(job_state "$f") after node1 stopped answering"
[ "$(jq '.gang.nslots' <<<"$("$HEC" gang --json)")" = 1 ] || fail "matrix not emptied after NODE_FAIL"
kill -CONT "$(daemon_pid node1)"
wait_node_state node1 IDLE 20
for i in $(seq 50); do [ -z "$(pgrep -f -- "echo $marker-[ef]" || true)" ] && break; sleep 0.1; done
[ -z "$(pgrep -f -- "echo $marker-[ef]" || true)" ] || fail "processes of the failed jobs remain"

# gang_cpu: node0's dispatcher moves to a CPU outside the node (node1's is
# the only other one here: this checks where it runs, not what it gains).
other=$(node_cpus node1)
if [ "$other" != "$(node_cpus node0)" ]; then
	echo "gang_cpu = $other" >>"$HEC_DIR/node0.conf"
	restart_daemon node0 "$HECD"
	wait_node_state node0 IDLE
fi
z=$(submit -N 2 -n 2 --share -- "$MPI_CHECK")
"$HEC" wait "$z" || fail "job $z after recovery: $(job_state "$z")"
if [ "$other" != "$(node_cpus node0)" ]; then
	[ "$(gang_cpus node0)" = "$other" ] ||
		fail "node0's gang dispatcher may run on CPUs '$(gang_cpus node0)', not gang_cpu $other"
fi
echo "PASS: $TEST_NAME"
