#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A cluster of two emulated hosts (own network, address and host name each;
# tests/hosts/hec-hosts) with daemons configured as on a real cluster, the
# CLI on a third, login host: the nodes register under their host names, a
# 2-host MPI job runs its ranks on both hosts and talks across the bridge,
# and two --share jobs are gang-scheduled on both hosts in the same slots.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/hosts_lib.sh"

hosts_up 2 "gang_slot = 50ms" "max_share = 2"
cd "$TEST_DIR"
cname=$(cluster_name)

# The nodes are the hosts, by the names their hecd took from the host name,
# each at its own address.
nodes=$("$HEC" nodes --json) || fail "hec nodes failed"
[ "$(jq -r '[.nodes[].name] | sort | join(",")' <<<"$nodes")" = "host0,host1" ] ||
	fail "nodes are not host0 and host1: $(jq -c '[.nodes[].name]' <<<"$nodes")"
"$HEC" nodes | grep -q '^host1 ' || fail "'hec nodes' does not show host1: $("$HEC" nodes)"

# A 2-host MPI job: the ranks on both hosts, by their own host names.
id=$(submit -N 2 -n 4 -J hostsmpi -- "$MPI_CHECK" 20)
"$HEC" wait --timeout 60 "$id" || fail "hec wait $id exited $? (state $(job_state "$id"): $(job_field "$id" reason))"
[ "$(job_field "$id" 'nodelist | join(",")')" = "host0,host1" ] || fail "nodelist $(job_field "$id" nodelist)"
log=$("$HEC" logs "$id") || fail "hec logs $id failed"
echo "$log"
grep -qx "result sum=2100 expected=2100 OK" <<<"$log" || fail "wrong or missing result"
for r in 0 1 2 3; do
	want=host$((r / 2)) # Hydra places ranks block-wise: host0:2,host1:2
	line=$(grep "^rank $r size 4 " <<<"$log") || fail "no line for rank $r"
	host=$(sed -n 's/.* host \([^ ]*\)$/\1/p' <<<"$line")
	[ "$host" = "$want" ] || fail "rank $r ran on host '$host', expected $want: $line"
	[ "$(awk '{print $6}' <<<"$line")" = "/hec/$cname/$want/job.$id" ] ||
		fail "rank $r not in $want's partition: $line"
done

# Gang scheduling across the hosts: two --share jobs of both hosts never run
# at once on a host (lib.sh's alternation), and both hosts run the same job
# in the same slot.
v2root=$(v2_mount)
[ -n "$v2root" ] || skip "the gang check reads cgroup v2 cgroup.events; no cgroup2 mount"
ITERS=${HEC_HOSTS_TEST_ITERS:-10000000} # long enough for both samplings below, at half speed each
a=$(submit -N 2 -n 2 --share -J ga -- "$MPI_CHECK" "$ITERS")
b=$(submit -N 2 -n 2 --share -J gb -- "$MPI_CHECK" "$ITERS")
wait_state "$a" RUNNING
wait_state "$b" RUNNING
g=$("$HEC" gang --json)
[ "$(jq -c '[.gang.rows[].nodes.host0] | sort' <<<"$g")" = "[$a,$b]" ] &&
	[ "$(jq -c '[.gang.rows[].nodes.host1] | sort' <<<"$g")" = "[$a,$b]" ] ||
	fail "jobs $a and $b are not in both hosts' gang rows: $g"
ALT_NODES="host0 host1" alternation "$a" "$b" 200

aligned "$a"
mpi_check_done "$ITERS" "$a" "$b"
echo "PASS: $TEST_NAME"
