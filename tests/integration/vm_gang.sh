#!/bin/bash
# Gang scheduling of vm partitions: two 2-node --share jobs whose guests
# all spin take turns on every node (all of a job's vCPUs run only in its
# slots: the guests' QEMU processes are switched as a whole), both finish,
# and `hec gang stats` reports how each guest is switched and what cgroup
# freeze and QMP stop/cont cost on it; a snapshot and a revert of one job
# while it time-shares leave its restored guests gang-switched.  The load is shell loops in both
# guests of each job, not MPI: Debian 12's MPICH 4.0 may hang in
# MPI_Finalize between guests (doc/design.md); vm_job.sh runs MPI in guests.
. "$HEC_SRCDIR/tests/integration/lib.sh"

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (Debian package qemu-system-x86)"
ls /boot/vmlinuz-* >/dev/null 2>&1 || skip "no guest kernel in /boot (Debian package linux-image-amd64)"
[ -x /bin/busybox ] || skip "no /bin/busybox (Debian package busybox-static)"

cluster_up 2 --slot 50ms --max-share 2
cd "$TEST_DIR"
cname=$(cluster_name)
v2root=$(v2_mount)
[ -n "$v2root" ] || skip "the test reads cgroup v2 cgroup.events; no cgroup2 mount"

SECS=${HEC_VM_GANG_SECS:-40}
cat >spin.sh <<EOF
#!/bin/sh
#HEC -N 2 -n 2 -t 10:00 --share --partition vm --vcpus 1
# count for $SECS s of wall time in both guests of the job
spin='n=0; end=\$((\$(date +%s) + $SECS)); while [ \$(date +%s) -lt \$end ]; do n=\$((n + 1)); done; echo "\$(hostname) counted \$n"'
hec-rsh node1 "\$spin" &
eval "\$spin"
wait
EOF
a=$(submit -J va spin.sh)
b=$(submit -J vb spin.sh)
wait_state "$a" RUNNING 60
wait_state "$b" RUNNING 60
[ "$(jq '.gang.nslots' <<<"$("$HEC" gang --json)")" = 2 ] || fail "two share jobs should take 2 slots"

# Guests up on both nodes for both jobs: the switch costs are in the stats.
for i in $(seq 180); do
	st=$("$HEC" gang stats --json) || fail "gang stats failed"
	[ "$(jq '.stats.vm_switch | length' <<<"$st")" = 4 ] && break
	sleep 1
done
[ "$(jq '.stats.vm_switch | length' <<<"$st")" = 4 ] || fail "vm_switch has not 4 guests: $st"
jq -c '.stats.vm_switch[]' <<<"$st"
"$HEC" gang stats | grep -qE '^node0 +[0-9]+ +[0-9.]+ us +[0-9.]+ us (cgroup|qmp)$' ||
	fail "'hec gang stats' prints no vm switch line: $("$HEC" gang stats)"
methods=$(jq -r '[.stats.vm_switch[].method] | unique | join(",")' <<<"$st")
# Each guest was measured both ways, and the cheaper way switches it.
jq -e 'all(.stats.vm_switch[]; .cgroup_us > 0 and .qmp_us > 0 and
	(if .method == "cgroup" then .cgroup_us <= .qmp_us else .qmp_us < .cgroup_us end))' <<<"$st" >/dev/null ||
	fail "a guest is switched by the dearer method: $st"

if [ "$methods" = cgroup ]; then
	# The QEMU processes are frozen as groups: never both jobs' guests running on a node.
	alternation "$a" "$b" 400
else
	note "guests switched by $methods: cgroup sampling does not apply (QMP stops the vCPUs only)"
fi

# A gang-switched guest is snapshotted and restored (its QEMU writes and
# loads during its own slots), and the restored QEMU is switched as the
# old one was.
note "snapshot and revert of job $a while it time-shares"
"$HEC" snapshot "$a" || fail "snapshot of the gang-switched job $a failed"
"$HEC" snapshot --revert "$a" || fail "revert of the gang-switched job $a failed"
if [ "$methods" = cgroup ]; then
	alternation "$a" "$b" 200
fi

"$HEC" wait "$a" || fail "job $a: $(job_state "$a") $(job_field "$a" reason)"
"$HEC" wait "$b" || fail "job $b: $(job_state "$b") $(job_field "$b" reason)"
for j in $a $b; do
	out=$("$HEC" logs "$j")
	echo "$out"
	for node in node0 node1; do
		grep -qE "^$node counted [0-9]+$" <<<"$out" || fail "job $j: no count from $node's guest: $out"
	done
done
st=$("$HEC" gang stats --json)
[ "$(jq '.stats.boundaries' <<<"$st")" -gt 10 ] || fail "no switching boundaries seen: $st"
echo "PASS: $TEST_NAME"
