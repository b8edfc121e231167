#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Jobs wait when there is no room, start in priority then FIFO order, and
# batch scripts with #HEC directives run with a plain mpiexec inside.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2
cd "$TEST_DIR"
marker="hec-queue-$$"
# A blocker holding both nodes until we release it.
touch "$TEST_DIR/hold"
blocker=$(submit -N 2 -n 2 -J blocker -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.1; done")
wait_state "$blocker" RUNNING

low=$(submit -N 2 -n 2 -J low -- /bin/sh -c "echo low \$(date +%s%N) >> $TEST_DIR/order")
high=$(submit -N 2 -n 2 -J high --priority 10 -- /bin/sh -c "echo high \$(date +%s%N) >> $TEST_DIR/order")
sleep 0.5
[ "$(job_state "$low")" = PENDING ] || fail "job $low is $(job_state "$low") while the cluster is full"
[ "$(job_state "$high")" = PENDING ] || fail "job $high is $(job_state "$high") while the cluster is full"
[ -n "$(job_field "$low" reason)" ] || fail "pending job $low has no reason"
q=$("$HEC" queue --json)
[ "$(jq '.jobs | length' <<<"$q")" = 3 ] || fail "queue lists $(jq '.jobs | length' <<<"$q") jobs, expected 3"
"$HEC" queue | grep -q PENDING || fail "'hec queue' shows no PENDING job"

# A job asking for more nodes than the cluster has is refused at once.
expect_fail 1 "3 nodes" "$HEC" submit -N 3 -n 3 -- /bin/true

rm "$TEST_DIR/hold"
"$HEC" wait "$blocker" || fail "blocker failed"
"$HEC" wait "$high" || fail "high failed"
"$HEC" wait "$low" || fail "low failed"
# Both need the whole cluster, so they run one after the other: high was
# submitted later but has the higher priority, so it ran first.
first=$(sort -k2 -n "$TEST_DIR/order" | head -n1 | cut -d' ' -f1)
[ "$first" = high ] || fail "order was $(cat "$TEST_DIR/order"); high: $("$HEC" show "$high"); logs: $("$HEC" logs "$high")"

# Batch script: directives set the shape, the command line overrides one.
cat > "$TEST_DIR/job.sh" <<SCRIPT
#!/bin/sh
#HEC -N 2
#HEC --ntasks=2
#HEC -J scripted
# a plain comment
#HEC -t 5
echo "nodes=\$HEC_JOB_NODELIST ntasks=\$HEC_NTASKS job=\$HEC_JOB_ID"
mpiexec -n 4 $MPI_CHECK 3
#HEC -N 1
SCRIPT
sid=$(submit -n 4 "$TEST_DIR/job.sh")
"$HEC" wait "$sid" || fail "script job $sid: $(job_state "$sid")"
[ "$(job_field "$sid" name)" = scripted ] || fail "script job name $(job_field "$sid" name)"
[ "$(job_field "$sid" nodes)" = 2 ] || fail "script job nodes $(job_field "$sid" nodes)"
[ "$(job_field "$sid" ntasks)" = 4 ] || fail "command line -n 4 did not override #HEC --ntasks=2"
[ "$(job_field "$sid" time_limit)" = 300 ] || fail "time limit $(job_field "$sid" time_limit)"
log=$("$HEC" logs "$sid")
grep -q "^nodes=node0,node1 ntasks=4 job=$sid\$" <<<"$log" || fail "script env wrong: $log"
grep -qx "result sum=60 expected=60 OK" <<<"$log" || fail "mpiexec inside the script failed: $log"

# Unknown directive: refused with the script's line number.
printf '#!/bin/sh\n#HEC -N 1\n#HEC --frobnicate\ntrue\n' > "$TEST_DIR/bad.sh"
expect_fail 2 "bad.sh:3" "$HEC" submit "$TEST_DIR/bad.sh"
echo "PASS: $TEST_NAME"
