#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# vm partitions end to end (QEMU under TCG here): a 2-node MPI job in two
# guests prints what the same job prints in cgroup partitions; a guest that
# panics and a QEMU that is killed end their jobs FAILED with the reason;
# bad --mem, unknown kinds and a missing guest kernel are clear errors.
. "$HEC_SRCDIR/tests/integration/lib.sh"

need_guests
PI="$HEC_BUILDDIR/examples/mpi_pi"

# pi's output without what differs between runs: pids, seconds, and the
# host names (in cgroup partitions every rank runs on this one host)
pi_result() { sed -E 's/ on [^ ]+ \(pid [0-9]+\)//; s/, [0-9.]+ s$//' | sort; }

cluster_up 2
cd "$TEST_DIR"

note "bad input is refused before anything starts"
expect_fail 2 'too little for a vm partition' "$HEC" submit --partition vm --mem 64M -- "$PI"
expect_fail 2 "'xen' is not a partition kind" "$HEC" submit --partition xen -- "$PI"
expect_fail 2 'only for --partition vm' "$HEC" submit --vcpus 2 -- "$PI"
expect_fail 2 'vcpus' "$HEC" submit --partition vm --vcpus 0 -- "$PI"
expect_fail 1 'no-such-program: command not found' "$HEC" submit --partition vm -- no-such-program
[ "$("$HEC" queue --all --json | jq '.jobs | length')" = 0 ] || fail "a refused submit made a job"

note "the same MPI job in cgroup partitions and in two guests"
cg=$(submit -N 2 -n 2 -- "$PI")
"$HEC" wait "$cg" || fail "cgroup job $cg: $(job_state "$cg")"
want=$("$HEC" logs "$cg" | pi_result)
t0=$(date +%s)
vm=$(submit -N 2 -n 2 -t 5:00 --partition vm --vcpus 1 -- "$PI")
[ "$(job_field "$vm" partition)" = vm ] || fail "job $vm: partition $(job_field "$vm" partition)"
"$HEC" show "$vm" | grep -q "Partition=vm VCPUsPerNode=1" || fail "hec show $vm: no Partition=vm line"
"$HEC" show "$cg" | grep -q "Partition=proc" || fail "hec show $cg: no Partition=proc line"
"$HEC" wait "$vm" || fail "vm job $vm: $(job_state "$vm") ($(job_field "$vm" reason)); output: $("$HEC" logs "$vm")"
note "vm job took $(( $(date +%s) - t0 )) s, boot included"
got=$("$HEC" logs "$vm" | pi_result)
echo "$got"
[ -n "$want" ] && [ "$got" = "$want" ] || fail "vm job printed '$got', cgroup job '$want'"
"$HEC" logs "$vm" | grep -q '^rank 1 of 2 on node1 ' || fail "rank 1 did not run in node1's guest"

note "a guest kernel panic fails the job with the panic as reason"
cat >panic.sh <<'EOF'
#!/bin/sh
#HEC -N 2 -n 2 -t 5:00 --partition vm --vcpus 1
echo going down
hec-rsh node1 'echo c > /proc/sysrq-trigger'
sleep 120
EOF
p=$(submit panic.sh)
"$HEC" wait "$p"
[ "$(job_state "$p")" = FAILED ] || fail "panicking job $p is $(job_state "$p")"
reason=$(job_field "$p" reason)
echo "reason: $reason"
grep -q 'node1: guest kernel panic: Kernel panic - not syncing: sysrq triggered crash' <<<"$reason" ||
	fail "job $p: reason '$reason' does not name node1's panic"

note "a QEMU killed under a running job fails it, naming the signal"
cat >sleep.sh <<'EOF'
#!/bin/sh
#HEC -N 2 -n 2 -t 5:00 --partition vm --vcpus 1
echo up; sleep 300
EOF
k=$(submit sleep.sh)
wait_state "$k" RUNNING 120
for i in $(seq 100); do grep -q up "$HEC_DIR/spool/0/job-$k.out" 2>/dev/null && break; sleep 0.2; done
# this cluster's QEMU only (other clusters on the machine have jobs of that number too)
qpid=$(procs_with "hec-job$k-node1 .*$TEST_DIR/" | head -n 1)
[ -n "$qpid" ] || fail "no QEMU process for job $k on node1"
kill -9 "$qpid"
"$HEC" wait "$k"
[ "$(job_state "$k")" = FAILED ] || fail "job $k is $(job_state "$k") after its QEMU was killed"
reason=$(job_field "$k" reason)
echo "reason: $reason"
grep -q 'node1: QEMU was killed by signal 9' <<<"$reason" || fail "job $k: reason '$reason'"
[ -z "$(procs_with "hec-job$k-.*$TEST_DIR/")" ] || fail "QEMU of job $k left running: $(procs_with "hec-job$k-.*$TEST_DIR/")"

note "a missing guest kernel is the job's clear error"
"$HEC" cluster down >/dev/null || fail "cluster down failed"
cluster_up 1 --vm-kernel /nonexistent/vmlinuz
m=$(submit -t 5:00 --partition vm -- "$PI")
"$HEC" wait "$m"
[ "$(job_state "$m")" = FAILED ] || fail "job $m is $(job_state "$m") without a kernel"
reason=$(job_field "$m" reason)
echo "reason: $reason"
grep -q 'guest kernel /nonexistent/vmlinuz: No such file or directory' <<<"$reason" ||
	fail "job $m: reason '$reason'"
echo "PASS: $TEST_NAME"
