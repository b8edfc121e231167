#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Embedded cluster life cycle: up, status, nodes with topology, a second
# "up" refused, down leaving no process and no cgroup behind.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2
# Cluster cgroups are named after the cluster (hec/c%08x/NODE), not the test
# directory: look for that name, and see it there while the cluster is up.
cname=$(cluster_name)
[ -n "$(cluster_cgroups "$cname")" ] || fail "no cgroup hec/$cname on any hierarchy while the cluster is up"
"$HEC" cluster status >/dev/null || fail "cluster status failed on a running cluster"

# The catalog (every job's environment and script) and the daemons' logs
# (their commands) are root's alone; state/ is passed through, not listed.
for f in "log 700" "state 711" "state/hec.db 600" "log/hecctld.log 600" "log/node0.log 600"; do
	set -- $f
	m=$(stat -c %a "$HEC_DIR/$1") || fail "no $HEC_DIR/$1"
	[ "$m" = "$2" ] || fail "$HEC_DIR/$1 has mode $m, not $2"
done
if id nobody >/dev/null 2>&1; then
	setpriv --reuid nobody --regid nogroup --clear-groups cat "$HEC_DIR/state/hec.db" >/dev/null 2>&1 &&
		fail "user nobody can read the catalog"
	setpriv --reuid nobody --regid nogroup --clear-groups ls "$HEC_DIR/state" >/dev/null 2>&1 &&
		fail "user nobody can list state/"
	setpriv --reuid nobody --regid nogroup --clear-groups cat "$HEC_DIR/log/hecctld.log" >/dev/null 2>&1 &&
		fail "user nobody can read the controller's log"
fi
[ "$("$HEC" cluster status --json | jq -r '.cluster.nodes_up')" = 2 ] || fail "status: nodes_up != 2"

nodes=$("$HEC" nodes --json)
[ "$(jq '.nodes | length' <<<"$nodes")" = 2 ] || fail "nodes: expected 2, got $nodes"
for n in node0 node1; do
	st=$(jq -r ".nodes[] | select(.name == \"$n\") | .state" <<<"$nodes")
	[ "$st" = IDLE ] || fail "$n state '$st', expected IDLE"
	cores=$(jq -r ".nodes[] | select(.name == \"$n\") | .cores" <<<"$nodes")
	[ "$cores" -ge 1 ] || fail "$n reports $cores cores"
	numa=$(jq -r ".nodes[] | select(.name == \"$n\") | .numa_nodes" <<<"$nodes")
	[ "$numa" -ge 1 ] || fail "$n reports $numa NUMA nodes"
done
# With as many nodes as cores the CPU sets are disjoint, and nobody shares.
ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then
	c0=$(jq -r '.nodes[] | select(.name=="node0") | .cpus' <<<"$nodes")
	c1=$(jq -r '.nodes[] | select(.name=="node1") | .cpus' <<<"$nodes")
	[ "$c0" != "$c1" ] || fail "node0 and node1 both own CPUs $c0"
	[ "$(jq '[.nodes[].shares_cpus_with[]] | length' <<<"$nodes")" = 0 ] || fail "nodes share CPUs: $nodes"
fi
"$HEC" nodes | grep -q node1 || fail "plain 'hec nodes' does not list node1"

expect_fail 1 "already" "$HEC" cluster up --nodes 2

"$HEC" cluster down >/dev/null || fail "cluster down failed"
[ -z "$(procs_with "$TEST_DIR")" ] || fail "processes left after cluster down: $(procs_with "$TEST_DIR")"
"$HEC" cluster status >/dev/null 2>&1 && fail "cluster status succeeds after down"
left=$(cluster_cgroups "$cname")
[ -z "$left" ] || fail "cgroups left after cluster down: $left"

# More nodes than cores: they share CPUs and 'hec nodes' says so.
n=$((ncpu + 1))
cluster_up "$n"
cname=$(cluster_name)
nodes=$("$HEC" nodes --json)
[ "$(jq '.nodes | length' <<<"$nodes")" = "$n" ] || fail "expected $n nodes"
[ "$(jq '[.nodes[] | select(.shares_cpus_with | length > 0)] | length' <<<"$nodes")" -ge 2 ] ||
	fail "with $n nodes on $ncpu cores no node reports sharing: $nodes"
"$HEC" nodes | grep -q "shares" || fail "'hec nodes' table does not say nodes share CPUs"
"$HEC" cluster down >/dev/null || fail "second cluster down failed"
[ -z "$(procs_with "$TEST_DIR")" ] || fail "processes left after the second cluster down"
left=$(cluster_cgroups "$cname")
[ -z "$left" ] || fail "cgroups left after the second cluster down: $left"
echo "PASS: $TEST_NAME"
