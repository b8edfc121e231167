#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A hecd restart kills no MPI job: each MPI proxy's end of its spawn bridge
# is a hec-relay in the job's partition, not hecd, so kill -9 of the agents
# (the remote node's, then the batch node's) leaves the ranks running and
# their output flowing to mpiexec; the job completes with every rank's
# output and no bridge broken (hec-launch saying its agent closed the
# connection, the proxy's own output and status lost).  A cancelled MPI job leaves no relay or proxy behind.
. "$HEC_SRCDIR/tests/integration/lib.sh"

# (a node silent past its timeout would fail its jobs: here it comes back;
# no gang slots: a job frozen when hecd died would stay frozen meanwhile)
cluster_up 2 --node-timeout 30s --timeslice none
cd "$TEST_DIR"
touch "$TEST_DIR/hold"
cat >"$TEST_DIR/rank.sh" <<EOS
#!/bin/sh
echo "rank \$PMI_RANK up"
touch "$TEST_DIR/up.\$PMI_RANK"
while [ -e "$TEST_DIR/hold" ]; do sleep 0.1; done
echo "rank \$PMI_RANK done"
EOS
chmod +x "$TEST_DIR/rank.sh"
up() { # wait until both ranks run
	local i
	for i in $(seq 300); do
		[ -e "$TEST_DIR/up.0" ] && [ -e "$TEST_DIR/up.1" ] && return 0
		sleep 0.1
	done
	fail "the ranks of job $1 did not start: $(job_state "$1") $(job_field "$1" reason)"
}
j=$(submit -N 2 -n 2 -J held -- "$TEST_DIR/rank.sh")
up "$j"
relays=$(procs_with "$TEST_DIR/.*state/node1/hec-relay")
[ -n "$relays" ] || fail "no hec-relay on node1 under job $j's proxy"
cg=$(awk -F: '$1 == "0" { print $3 }' "/proc/$(head -n 1 <<<"$relays")/cgroup")
case $cg in */node1/job.$j) ;; *) fail "node1's relay is in cgroup $cg, not job $j's partition" ;; esac

for n in node1 node0; do
	note "kill -9 of $n's hecd while the ranks run"
	kill -9 "$(daemon_pid $n)"
	sleep 1
	[ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") with $n's hecd down"
	start_daemon $n "$HECD"
	wait_node_state $n ALLOCATED 30
done
sleep 1
[ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") after the restarts: $(job_field "$j" reason)"
rm "$TEST_DIR/hold"
"$HEC" wait --timeout 60 "$j" || fail "job $j: $(job_state "$j") $(job_field "$j" reason)"
[ "$(job_field "$j" exit_code)" = 0 ] || fail "job $j exit code $(job_field "$j" exit_code)"
log=$("$HEC" logs "$j") || fail "hec logs $j failed"
echo "$log"
for r in 0 1; do
	grep -qx "rank $r done" <<<"$log" || fail "rank $r's output after the restarts is missing"
done
# each proxy's bridge lived on: no hec-launch lost its agent mid-job
if grep -q "hec-launch" <<<"$log"; then fail "a proxy's bridge broke with its hecd"; fi

note "a cancelled MPI job leaves no relay or proxy"
touch "$TEST_DIR/hold"
rm -f "$TEST_DIR"/up.*
k=$(submit -N 2 -n 2 -J cancelled -- "$TEST_DIR/rank.sh")
up "$k"
[ -n "$(procs_with "$TEST_DIR/.*state/node1/hec-relay")" ] || fail "no hec-relay on node1 for job $k"
"$HEC" cancel "$k" >/dev/null || fail "hec cancel $k failed"
wait_state "$k" CANCELLED 30
for i in $(seq 100); do
	[ -z "$(procs_with "$TEST_DIR/.*state/node./hec-relay")$(procs_with "$TEST_DIR/rank.sh")" ] && break
	sleep 0.1
done
left=$(procs_with "$TEST_DIR/.*state/node./hec-relay")$(procs_with "$TEST_DIR/rank.sh")
[ -z "$left" ] || fail "left after job $k's end: $(ps -o pid=,args= -p "$(tr '\n' ',' <<<"$left" | sed 's/,$//')")"
echo "PASS"
