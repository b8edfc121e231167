#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A 2-node x 2-rank MPI job: the known result comes out, the output reaches
# `hec logs`, and every rank sat in its node's partition cgroup of the job.
. "$HEC_SRCDIR/tests/integration/lib.sh"

cluster_up 2
cd "$TEST_DIR"
id=$(submit -N 2 -n 4 -J mpicheck -- "$MPI_CHECK" 20)
"$HEC" wait "$id" || fail "hec wait $id exited $? (state $(job_state "$id"))"
[ "$(job_state "$id")" = COMPLETED ] || fail "job $id is $(job_state "$id")"
[ "$(job_field "$id" exit_code)" = 0 ] || fail "job $id exit code $(job_field "$id" exit_code)"
[ "$(job_field "$id" 'nodelist | join(",")')" = "node0,node1" ] || fail "nodelist $(job_field "$id" nodelist)"

log=$("$HEC" logs "$id") || fail "hec logs $id failed"
echo "$log"
# 20 rounds of allreduce over ranks 1..4: 10 * 210 = 2100
grep -qx "result sum=2100 expected=2100 OK" <<<"$log" || fail "wrong or missing result"

cname=$(cluster_name)
nodes=$("$HEC" nodes --json)
for r in 0 1 2 3; do
	node=node$((r / 2)) # Hydra places ranks block-wise: node0:2,node1:2
	line=$(grep "^rank $r size 4 " <<<"$log") || fail "no line for rank $r"
	want="/hec/$cname/$node/job.$id"
	v2=$(awk '{print $6}' <<<"$line")
	[ "$v2" = "$want" ] || fail "rank $r in cgroup2 '$v2', expected '$want'"
	if [ -n "$(cpuset_mount)" ]; then
		cs=$(awk '{print $8}' <<<"$line")
		[ "$cs" = "$want" ] || fail "rank $r in cpuset '$cs', expected '$want'"
		cpus=$(awk '{print $10}' <<<"$line")
		owned=$(jq -r ".nodes[] | select(.name==\"$node\") | .cpus" <<<"$nodes")
		[ "$cpus" = "$owned" ] || fail "rank $r may run on CPUs $cpus, $node owns $owned"
	fi
done

# After the job the partitions are gone.
v2root=$(v2_mount)
for node in node0 node1; do
	[ ! -e "$v2root/hec/$cname/$node/job.$id" ] || fail "partition of job $id left on $node"
done

# A failing MPI program: FAILED with its exit code, and hec wait passes it on.
id2=$(submit -N 2 -n 2 -- /bin/sh -c 'exit 3')
"$HEC" wait "$id2"
rc=$?
[ "$rc" = 3 ] || fail "hec wait on a job exiting 3 returned $rc"
[ "$(job_state "$id2")" = FAILED ] || fail "job $id2 is $(job_state "$id2"), expected FAILED"
[ "$(job_field "$id2" exit_code)" = 3 ] || fail "job $id2 exit code $(job_field "$id2" exit_code)"

# A batch script's plain `mpiexec` and `mpicc` are MPICH's even where the
# submitter's PATH finds another MPI's first (Debian's alternatives pick Open
# MPI's once it is installed): here a fake one, first in the PATH submitted.
mkdir -p "$TEST_DIR/ompi"
for p in mpiexec mpirun mpicc; do
	printf '#!/bin/sh\necho "not MPICH: %s"\nexit 3\n' "$p" >"$TEST_DIR/ompi/$p"
	chmod +x "$TEST_DIR/ompi/$p"
done
cat >"$TEST_DIR/plain.sh" <<EOS
#!/bin/sh
#HEC -N 2 -n 2
echo "mpiexec is \$(readlink -f "\$(command -v mpiexec)")"
mpicc -show
mpiexec -n 2 $MPI_CHECK
EOS
id3=$(PATH="$TEST_DIR/ompi:$PATH" submit -o "$TEST_DIR/plain.out" "$TEST_DIR/plain.sh")
"$HEC" wait "$id3" || fail "job $id3 (plain mpiexec) is $(job_state "$id3"): $(cat "$TEST_DIR/plain.out")"
cat "$TEST_DIR/plain.out"
grep -q "not MPICH" "$TEST_DIR/plain.out" && fail "the job ran the PATH's other MPI: $(cat "$TEST_DIR/plain.out")"
grep -qx "mpiexec is .*/mpiexec.hydra" "$TEST_DIR/plain.out" ||
	fail "the job's mpiexec is not MPICH's Hydra: $(cat "$TEST_DIR/plain.out")"
grep -q -- "-lmpich" "$TEST_DIR/plain.out" || fail "the job's mpicc is not MPICH's: $(cat "$TEST_DIR/plain.out")"
[ "$(grep -c '^rank ' "$TEST_DIR/plain.out")" -ge 2 ] || grep -q "ranks" "$TEST_DIR/plain.out" ||
	fail "MPICH's mpiexec did not run 2 ranks: $(cat "$TEST_DIR/plain.out")"

# An MPI proxy that cannot be run (Hydra runs hydra_pmi_proxy from the
# directory of the mpiexec it was started as: here a lone link to it) does
# not hang the job until its time limit: hec-launch ends mpiexec, saying so.
mkdir -p "$TEST_DIR/lone"
ln -sf "$(readlink -f "$(sed -n 's/^mpiexec *= *//p' "$HEC_DIR"/node0.conf | head -n 1)")" "$TEST_DIR/lone/mpiexec" 2>/dev/null
[ -x "$TEST_DIR/lone/mpiexec" ] || ln -sf /usr/bin/mpiexec.hydra "$TEST_DIR/lone/mpiexec"
printf '#!/bin/sh\n%s -n 2 %s\n' "$TEST_DIR/lone/mpiexec" "$MPI_CHECK" >"$TEST_DIR/lone.sh"
chmod +x "$TEST_DIR/lone.sh"
id4=$(submit -N 2 -n 2 -t 10:00 -o "$TEST_DIR/lone.out" "$TEST_DIR/lone.sh")
rc=0
"$HEC" wait --timeout 60 "$id4" || rc=$?
cat "$TEST_DIR/lone.out"
[ "$(job_state "$id4")" = FAILED ] || fail "job $id4 with an unrunnable proxy is $(job_state "$id4") (wait: $rc)"
grep -q "hec-launch: node[01]: the MPI proxy could not be run there (status 127): ending mpiexec" "$TEST_DIR/lone.out" ||
	fail "job $id4's output does not say why: $(cat "$TEST_DIR/lone.out")"
echo "PASS: $TEST_NAME"
