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

# aligned A: sample job A on host0, host1, host0 again within 10 ms (a fifth
# of a slot); where host0's two reads agree, host1's must agree with them but
# for the hosts' switches' skew around a slot boundary.  Unaligned slots
# (hosts switching on their own) would disagree in about half the samples.
aligned() {
	local job=$1 i=0 t0 t1 x1 y x2 n=0 off=0 on=0 end=$((SECONDS + 60))
	while [ "$n" -lt 200 ] && [ "$SECONDS" -lt "$end" ]; do
		i=$((i + 1))
		t0=${EPOCHREALTIME/./}
		run_r host0 "$job"; x1=$R; run_r host1 "$job"; y=$R; run_r host0 "$job"; x2=$R
		t1=${EPOCHREALTIME/./}
		[ "$x1" = - ] || [ "$y" = - ] && break # the job ended
		[ $((t1 - t0)) -lt 10000 ] && [ "$x1" = "$x2" ] || continue
		n=$((n + 1))
		[ "$x1" = 1 ] && on=$((on + 1))
		[ "$y" = "$x1" ] || off=$((off + 1))
		sleep 0.013
	done
	echo "aligned: $n samples of job $job in $i rounds, running in $on, hosts disagreeing in $off"
	[ "$n" -ge 50 ] || fail "only $n valid samples of job $job's slots on the two hosts"
	[ "$on" -ge 5 ] && [ $((n - on)) -ge 5 ] || fail "job $job not seen both running and frozen ($on of $n)"
	[ $((off * 10)) -le "$n" ] ||
		fail "job $job's slots on host0 and host1 are not aligned: they disagree in $off of $n samples"
}
aligned "$a"
for j in $a $b; do
	"$HEC" wait --timeout 60 "$j" || fail "job $j: $(job_state "$j") $(job_field "$j" reason)"
	grep -qx "result sum=$((3 * ITERS * (ITERS + 1) / 2)) expected=$((3 * ITERS * (ITERS + 1) / 2)) OK" \
		<<<"$("$HEC" logs "$j")" || fail "job $j result wrong: $("$HEC" logs "$j" | grep '^result')"
done
echo "PASS: $TEST_NAME"
