#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The end of a SLURM allocation checkpoints hec's jobs, and the next
# allocation resumes them (launcher/hec-slurm, issue #15): one batch script,
# as a user would keep it for a chain of allocations (`hec-slurm up
# --storage 2 --resume`, `hec submit` only when nothing was resumed, `hec
# wait ID & wait $!`), runs twice with the same HEC_DIR on a real SLURM of 3
# emulated hosts.  The first allocation (host0, host1) submits the heat
# example (libhecckpt, 2 nodes x 1 rank) and gets SIGUSR1 in its batch shell
# while heat runs, as `#SBATCH --signal=B:USR1@SECONDS` has SLURM send it
# before the time limit (sent here by `scancel -b -s USR1`, which is the same
# delivery, at a moment the test chooses): the trap checkpoints the job,
# lists it for resumption and brings hec down; nothing of hec is left.  The
# second allocation (host1, host2: another pair) resumes the job from that
# checkpoint on its own nodes; the job keeps its id and output, restores at
# the step of the checkpoint and ends with the checksum of an uninterrupted
# run.  A third allocation has nothing to resume.  Last, SLURM's own time
# limit: an allocation of --time=1 with --signal=B:USR1@55 whose job would
# run for hours: SLURM's signal (sent at its next check of time limits, 5
# to 35 s in) has its job checkpointed and hec down before the limit.
# hec-test-timeout: 600
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/hosts_lib.sh"
. "$HEC_SRCDIR/tests/integration/munge_lib.sh"
. "$HEC_SRCDIR/tests/integration/slurm_lib.sh"
. "$HEC_SRCDIR/tests/integration/heat_lib.sh" # HEAT, ARGS, heat_script, steps_done, checksum_of
HEC="$HEC_BUILDDIR/hec"
command -v jq >/dev/null || skip "jq not installed"
JOBS=()
test_cleanup() {
	local j
	for j in "${JOBS[@]}"; do on_host 0 scancel "$j" 2>/dev/null; done
	"$HEC" cluster down --dir "$TEST_DIR/tl" >/dev/null 2>&1
	slurm_cleanup
}

note "the reference: heat run directly, never interrupted"
cd "$TEST_DIR"
# shellcheck disable=SC2086
mpiexec.mpich -n 2 "$HEAT" $ARGS >ref.out 2>&1 || fail "heat did not run: $(tail -n 3 ref.out)"
ref=$(checksum_of ref.out) || fail "heat printed no checksum: $(tail -n 3 ref.out)"
echo "$ref"

slurm_up 3
heat_script heat.sh 2
cat >batch.sh <<EOS
#!/bin/bash
#SBATCH -N 2
#SBATCH --signal=B:USR1@120
set -eu
export HEC_BINDIR=$HEC_BUILDDIR HEC_DIR=$HEC_DIR
eval "\$($HEC_SRCDIR/launcher/hec-slurm up --storage 2 --resume)"
echo "allocation \$SLURM_JOB_ID on \$SLURM_JOB_NODELIST: resumed '\$HEC_RESUMED'"
if [ -n "\$HEC_RESUMED" ]; then
	id=\$HEC_RESUMED
else
	id=\$($HEC submit -o $TEST_DIR/heat.out $TEST_DIR/heat.sh)
	id=\${id#Submitted job }
fi
echo "\$id" >$TEST_DIR/hecjob.\$SLURM_JOB_ID
$HEC wait --timeout 300 "\$id" & wait \$! || echo "hec wait \$id: \$?"
$HEC show "\$id" --json >$TEST_DIR/show.\$SLURM_JOB_ID.json
$HEC cluster down
EOS
chmod +x batch.sh
# sbatch_on NODES NAME: the batch script as a SLURM job on those nodes
sbatch_on() {
	local j
	j=$(on_host 0 sbatch --parsable -N 2 -w "$1" -o "$TEST_DIR/$2.out" "$TEST_DIR/batch.sh") ||
		fail "sbatch failed: $j"
	JOBS+=("$j")
	echo "$j"
}

note "allocation 1 on host0,host1: hec's heat job, then SIGUSR1 to the batch shell"
A=$(sbatch_on host0,host1 a)
for i in $(seq 600); do
	s=$(steps_done heat.out 2>/dev/null)
	[ -n "$s" ] && [ "$s" -ge $((STEPS / 10)) ] && break
	st=$(slurm_state "$A")
	case $st in PENDING | CONFIGURING | RUNNING | "") ;; *) fail "SLURM job $A is $st before heat ran: $(cat a.out)" ;; esac
	sleep 0.1
done
[ "$i" -lt 600 ] || fail "heat not at step $((STEPS / 10)) in 60 s: $(cat a.out heat.out 2>&1 | tail -n 8)"
hecjob=$(cat "hecjob.$A")
on_host 0 scancel -b -s USR1 "$A" || fail "scancel -b -s USR1 $A failed"
st=$(slurm_wait_end "$A" 120)
cat a.out
[ "$st" = COMPLETED ] || fail "SLURM job $A is '$st' after SIGUSR1, expected COMPLETED (the trap exits 0)"
epoch=$(sed -n "s/^hec-slurm: job $hecjob: checkpoint \([0-9]*\) committed$/\1/p" a.out)
[ -n "$epoch" ] || fail "no checkpoint of job $hecjob said committed by the trap: $(cat a.out)"
at=$(sed -n "s/^checkpoint $epoch at step //p" heat.out)
[ -n "$at" ] || fail "heat did not write checkpoint $epoch: $(tail -n 5 heat.out)"
grep -q '^checksum ' heat.out && fail "heat completed in allocation 1: the signal came too late to prove anything"
[ "$(cat "$HEC_DIR/state/slurm.resume")" = "$hecjob" ] ||
	fail "state/slurm.resume is '$(cat "$HEC_DIR/state/slurm.resume" 2>&1)', expected job $hecjob"
[ -e "show.$A.json" ] && fail "the batch script ran on past the trap (show.$A.json written)"
hec_left "$A" "the USR1 trap"
last=$(steps_done heat.out)
echo "job $hecjob: checkpoint $epoch at step $at; heat stopped at step $last"

note "allocation 2 on host1,host2 resumes job $hecjob"
# as an allocation that SLURM killed outright would leave it: a pid file
# naming a process long gone
sh -c 'echo $$' >"$HEC_DIR/run/s5.pid"
B=$(sbatch_on host1,host2 b)
st=$(slurm_wait_end "$B" 300)
cat b.out
[ "$st" = COMPLETED ] || fail "SLURM job $B is '$st', expected COMPLETED"
grep -qx "allocation $B on host\[1-2\]: resumed '$hecjob'" b.out ||
	fail "allocation $B did not say it resumed job $hecjob: $(cat b.out)"
[ "$(cat "hecjob.$B")" = "$hecjob" ] || fail "allocation $B waited for job $(cat "hecjob.$B"), not $hecjob"
jq -e --arg e "$epoch" '.job.state == "COMPLETED" and (.job.nodelist | join(",")) == "host1,host2"
	and ([.job.restarts[].epoch | tostring] | index($e) != null)' "show.$B.json" >/dev/null ||
	fail "job $hecjob after allocation $B: $(jq -c '.job | {state, reason, nodelist, restarts}' "show.$B.json")"
grep -qx "restored epoch $epoch at step $at" heat.out ||
	fail "heat did not restore epoch $epoch at step $at: $(grep -E '^(restored|checkpoint)' heat.out)"
[ "$(checksum_of heat.out)" = "$ref" ] ||
	fail "job $hecjob ended with '$(checksum_of heat.out)', uninterrupted: '$ref'"
[ -e "$HEC_DIR/state/slurm.resume" ] && fail "state/slurm.resume still there after the resume"
hec_left "$B" "hec cluster down in the batch script"
echo "job $hecjob resumed on host1,host2 from checkpoint $epoch (step $at): $(checksum_of heat.out)"

note "allocation 3: nothing to resume, so a new job"
rm -f heat.out
C=$(sbatch_on host0,host2 c)
st=$(slurm_wait_end "$C" 300)
cat c.out
[ "$st" = COMPLETED ] || fail "SLURM job $C is '$st', expected COMPLETED"
grep -qx "allocation $C on host\[0,2\]: resumed ''" c.out || fail "allocation $C resumed something: $(cat c.out)"
[ "$(cat "hecjob.$C")" -gt "$hecjob" ] || fail "allocation $C's job is $(cat "hecjob.$C"), not a new one"
[ "$(checksum_of heat.out)" = "$ref" ] || fail "the new job ended with '$(checksum_of heat.out)'"
note "SLURM's time limit: --time=1 --signal=B:USR1@55, a job of hours"
cat >tl.sh <<EOS
#!/bin/bash
#SBATCH --time=1
#SBATCH --signal=B:USR1@55
set -eu
export HEC_BINDIR=$HEC_BUILDDIR HEC_DIR=$TEST_DIR/tl
eval "\$($HEC_SRCDIR/launcher/hec-slurm up --storage 1)"
id=\$($HEC submit -N 1 -n 1 -o $TEST_DIR/tl.heat.out -- $HEAT 256 256 1000000000)
id=\${id#Submitted job }
$HEC wait "\$id" & wait \$!
echo "the batch script ran on past the trap"
EOS
chmod +x tl.sh
T=$(on_host 0 sbatch --parsable -N 1 -o "$TEST_DIR/tl.out" "$TEST_DIR/tl.sh") || fail "sbatch failed: $T"
JOBS+=("$T")
t0=$SECONDS
st=$(slurm_wait_end "$T" 100)
cat tl.out
[ "$st" = COMPLETED ] || fail "SLURM job $T is '$st' at its time limit, expected COMPLETED (the trap's exit 0 before the limit)"
grep -qE "^hec-slurm: job 1: checkpoint [0-9]+ committed$" tl.out ||
	fail "the time limit's signal did not have job 1 checkpointed: $(cat tl.out)"
grep -qE "^checkpoint [0-9]+ at step [0-9]+$" tl.heat.out || fail "heat did not write the checkpoint: $(tail -n 3 tl.heat.out)"
[ "$(cat "$TEST_DIR/tl/state/slurm.resume")" = 1 ] || fail "job 1 not listed for resumption in $TEST_DIR/tl"
HEC_DIR=$TEST_DIR/tl hec_left "$T" "the time limit"
echo "SLURM job $T: SIGUSR1 and the checkpoint within $((SECONDS - t0)) s of sbatch (--time=1)"
echo "PASS: $TEST_NAME"
