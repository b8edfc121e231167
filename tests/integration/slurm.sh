#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# hec inside a SLURM allocation (launcher/hec-slurm): a real SLURM of our
# own (slurmctld on host0, a slurmd on each of two emulated hosts, our own
# munged, everything under the test directory) runs an `sbatch -N 2` script
# that brings hec up, runs a 2-node MPI job under hec, then two jobs that
# time-share both nodes in gang slots (sampled: never both running on a
# node), and brings hec down.
# The job's ranks ran on both hosts; hec's daemons were the SLURM job's
# steps (squeue -s, and their environment); after the SLURM job nothing of
# hec is left.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/hosts_lib.sh"
. "$HEC_SRCDIR/tests/integration/munge_lib.sh"
. "$HEC_SRCDIR/tests/integration/slurm_lib.sh"
HEC="$HEC_BUILDDIR/hec" # the cluster's socket is on the shared disk

# outside an allocation it says so
expect_fail 1 "hec-slurm: up: not inside a SLURM allocation" \
	env -u SLURM_JOB_ID -u SLURM_JOB_NODELIST "$HEC_SRCDIR/launcher/hec-slurm" up

test_cleanup() {
	[ -n "${JOB:-}" ] && on_host 0 scancel "$JOB" 2>/dev/null
	slurm_cleanup
}
slurm_up 2

ITERS=${HEC_HOSTS_TEST_ITERS:-10000000} # (as hosts_mpi.sh: long enough to sample at half speed)
# The batch script, as a user would write it (with the build tree's programs).
cat >"$TEST_DIR/batch.sh" <<EOS
#!/bin/bash
set -eu
export HEC_BINDIR=$HEC_BUILDDIR HEC_DIR=$HEC_DIR
eval "\$($HEC_SRCDIR/launcher/hec-slurm up)"
squeue -h -s -j "\$SLURM_JOB_ID" -o '%i %j %N' >$TEST_DIR/steps
for p in \$(pgrep -f "\$HEC_DIR/"); do
	echo "\$(tr '\\0' ' ' </proc/\$p/cmdline) \$(tr '\\0' '\\n' </proc/\$p/environ | grep -E '^SLURM_(JOB_ID|STEP_ID)=' | sort | tr '\\n' ' ')"
done >$TEST_DIR/daemons
id=\$($HEC submit -N 2 -n 4 -J slurmmpi -- $MPI_CHECK 20)
id=\${id#Submitted job }
$HEC wait --timeout 60 "\$id" || echo "hec wait \$id: \$?"
$HEC logs "\$id" >$TEST_DIR/mpi.out
$HEC show "\$id" --json >$TEST_DIR/mpi.json
# two jobs time-sharing both nodes in gang slots; the test samples them
a=\$($HEC submit -N 2 -n 2 --share -J ga -- $MPI_CHECK $ITERS)
b=\$($HEC submit -N 2 -n 2 --share -J gb -- $MPI_CHECK $ITERS)
echo "\${a#Submitted job } \${b#Submitted job }" >$TEST_DIR/gang.ids
for j in \${a#Submitted job } \${b#Submitted job }; do
	$HEC wait --timeout 120 "\$j" || echo "hec wait \$j: \$?"
	$HEC logs "\$j" | grep '^result' >>$TEST_DIR/gang.out
done
$HEC cluster down
EOS
chmod +x "$TEST_DIR/batch.sh"
cd "$TEST_DIR"
JOB=$(on_host 0 sbatch --parsable -N 2 -o "$TEST_DIR/batch.out" "$TEST_DIR/batch.sh") || fail "sbatch failed: $JOB"
note "SLURM job $JOB"
# the gang inside the allocation: the two --share jobs never run at once on
# a node, and both run (lib.sh's alternation, on the partitions' cgroups)
for i in $(seq 600); do [ -s "$TEST_DIR/gang.ids" ] && break; sleep 0.1; done
[ -s "$TEST_DIR/gang.ids" ] || fail "no --share jobs in SLURM job $JOB after 60 s: $(cat "$TEST_DIR/batch.out")"
read -r ga gb <"$TEST_DIR/gang.ids"
cname=slurm$JOB v2root=$(v2_mount)
wait_state "$ga" RUNNING
wait_state "$gb" RUNNING
ALT_NODES="host0 host1" alternation "$ga" "$gb" 100
st=$(slurm_wait_end "$JOB" 120)
cat "$TEST_DIR/batch.out"
[ "$st" = COMPLETED ] || fail "SLURM job $JOB is '$st', expected COMPLETED"

# hec's MPI job ran its ranks on both SLURM nodes
cat "$TEST_DIR/mpi.out"
grep -qx "result sum=2100 expected=2100 OK" "$TEST_DIR/mpi.out" || fail "hec's MPI job: wrong or missing result"
[ "$(jq -r '.job.nodelist | join(",")' "$TEST_DIR/mpi.json")" = host0,host1 ] ||
	fail "hec's job ran on $(jq -c .job.nodelist "$TEST_DIR/mpi.json"), expected host0,host1"
for r in 0 1 2 3; do
	line=$(grep "^rank $r size 4 " "$TEST_DIR/mpi.out") || fail "no line for rank $r"
	[ "$(sed -n 's/.* host \([^ ]*\)$/\1/p' <<<"$line")" = "host$((r / 2))" ] ||
		fail "rank $r ran elsewhere than host$((r / 2)): $line"
done
sum=$((3 * ITERS * (ITERS + 1) / 2))
[ "$(grep -cx "result sum=$sum expected=$sum OK" "$TEST_DIR/gang.out")" = 2 ] ||
	fail "the --share jobs' results: $(cat "$TEST_DIR/gang.out")"
# hec's daemons were steps of the SLURM job
cat "$TEST_DIR/steps" "$TEST_DIR/daemons"
grep -qE "^$JOB\.[0-9]+ hecctld host0$" "$TEST_DIR/steps" ||
	fail "no hecctld step of job $JOB on host0: $(cat "$TEST_DIR/steps")"
grep -qE "^$JOB\.[0-9]+ hecd host\[0-1\]$" "$TEST_DIR/steps" ||
	fail "no hecd step of job $JOB on host[0-1]: $(cat "$TEST_DIR/steps")"
for d in hecctld:1 hecd:2; do
	n=$(grep -cE "^[^ ]*/${d%:*} -f .* SLURM_JOB_ID=$JOB SLURM_STEP_ID=[0-9]+ $" "$TEST_DIR/daemons")
	[ "$n" = "${d#*:}" ] ||
		fail "$n ${d%:*} processes in SLURM job $JOB's steps, expected ${d#*:}: $(cat "$TEST_DIR/daemons")"
done
hec_left "$JOB" "hec cluster down in the batch script"

# A SLURM job that ends with hec's 2-node MPI job still running, without
# `hec cluster down`: at scancel, or when its batch script ends.  SLURM's
# SIGTERM to the steps ends hec's daemons, and hec's job and its partitions
# go with them.  abandoned scancel|end
ranks() { pgrep -f -- "^$MPI_CHECK 100000000" | wc -l; }
abandoned() {
	local how=$1 want i st
	export HEC_DIR="$TEST_DIR/$how"
	cat >"$TEST_DIR/$how.sh" <<EOS
#!/bin/bash
set -eu
export HEC_BINDIR=$HEC_BUILDDIR HEC_DIR=$HEC_DIR
eval "\$($HEC_SRCDIR/launcher/hec-slurm up)"
$HEC submit -N 2 -n 4 -J long -- $MPI_CHECK 100000000
until [ "\$(pgrep -f -- "^$MPI_CHECK 100000000" | wc -l)" -ge 4 ]; do sleep 0.1; done
touch $TEST_DIR/$how.running
[ $how = end ] || sleep 1000
EOS
	chmod +x "$TEST_DIR/$how.sh"
	JOB=$(on_host 0 sbatch --parsable -N 2 -o "$TEST_DIR/$how.out" "$TEST_DIR/$how.sh") ||
		fail "sbatch failed: $JOB"
	note "SLURM job $JOB, to $how with hec's job running"
	for i in $(seq 300); do
		[ -e "$TEST_DIR/$how.running" ] && break
		sleep 0.1
	done
	[ "$i" -lt 300 ] ||
		fail "hec's job's 4 ranks in SLURM job $JOB not running after 30 s: $(cat "$TEST_DIR/$how.out")"
	want=COMPLETED
	if [ "$how" = scancel ]; then
		on_host 0 scancel "$JOB" || fail "scancel $JOB failed"
		want=CANCELLED
	fi
	# (SLURM calls the job ended at once; its steps end within KillWait, 5 s)
	for i in $(seq 150); do
		[ -z "$(on_host 0 squeue -h -s -j "$JOB" 2>/dev/null)" ] &&
			[ -z "$(pgrep -f -- "$HEC_DIR( |/|$)")" ] && break
		sleep 0.1
	done
	st=$(slurm_state "$JOB")
	[ "$st" = "$want" ] || fail "SLURM job $JOB is '$st' after the $how, expected $want"
	cat "$TEST_DIR/$how.out"
	grep -h "cluster down\|leftover\|exiting" "$HEC_DIR/log/hecd.log" "$HEC_DIR/log/hecctld.log"
	hec_left "$JOB" "$how"
	[ "$(ranks)" = 0 ] || fail "ranks of hec's job left after the $how of SLURM job $JOB: $(pgrep -af -- "$MPI_CHECK")"
}
abandoned scancel
abandoned end
echo "PASS: $TEST_NAME"
