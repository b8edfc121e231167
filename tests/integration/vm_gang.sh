#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Gang scheduling of vm partitions: two 2-node --share jobs whose guests
# all spin take turns on every node (a job's vCPUs run only in its slots,
# whether its guests are switched by cgroup freeze or QMP), both finish,
# and `hec gang stats` reports how each guest is switched and what cgroup
# freeze and QMP stop/cont cost on it; a checkpoint of one job while it
# time-shares (`hec ckpt --wait`), then its restart from it (`hec
# restart`), leave its restored guests gang-switched, taking turns with the
# other job's, and both jobs complete; on node1 the checkpointed guest has
# a freeze asked that never completes (a task of its cgroup stuck in the
# kernel) and is captured all the same.  The load is shell loops in both
# guests of each job, not MPI: Debian 12's MPICH 4.0 may hang in
# MPI_Finalize between guests (doc/design.md); vm_job.sh runs MPI in guests.
# VM_SWITCH (vm_gang_qmp.sh sets qmp) is the cluster's --vm-switch: with
# cgroup or qmp every guest must be switched that way, from the moment it
# is up to after its restart (with qmp its cgroup is then never frozen).
VM_SWITCH=${VM_SWITCH:-auto}
. "$HEC_SRCDIR/tests/integration/lib.sh"

need_guests

cluster_up 2 --slot 50ms --max-share 2 --vm-switch "$VM_SWITCH" --storage 1
cd "$TEST_DIR"
cname=$(cluster_name)
v2root=$(v2_mount)
[ -n "$v2root" ] || skip "the test reads cgroup v2 cgroup.events; no cgroup2 mount"

# (long enough that the second job still runs when the first, checkpointed
# and restarted after the first checks, has been resumed and is checked again)
SECS=${HEC_VM_GANG_SECS:-90}
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
if [ "$VM_SWITCH" = auto ]; then
	# Each guest was measured both ways, and the cheaper way switches it.
	jq -e 'all(.stats.vm_switch[]; .cgroup_us > 0 and .qmp_us > 0 and
		(if .method == "cgroup" then .cgroup_us <= .qmp_us else .qmp_us < .cgroup_us end))' <<<"$st" >/dev/null ||
		fail "a guest is switched by the dearer method: $st"
else
	# Measured both ways all the same; switched the way the cluster says.
	jq -e 'all(.stats.vm_switch[]; .cgroup_us > 0 and .qmp_us > 0)' <<<"$st" >/dev/null ||
		fail "a guest was not measured both ways: $st"
	[ "$methods" = "$VM_SWITCH" ] || fail "vm_switch = $VM_SWITCH, but guests are switched by $methods: $st"
fi

# A guest runs only in its own slots, whichever way it is switched: its
# vCPU thread uses CPU only then (cpu_turns) -- QMP stop parks it, a cgroup
# freeze freezes the whole QEMU.  QEMU names no threads here: the vCPU is
# the thread that used the most CPU over 2 s of spinning.
declare -A VCPU
find_vcpus() {
	local j node pid f line best max d
	declare -A t0
	for j; do
		for node in node0 node1; do
			# (this cluster's: other clusters have their job 1 too)
			pid=$(pgrep -f -- "path=$HEC_DIR/state/$node/job\.$j/console\.log " | head -n 1)
			[ -n "$pid" ] || fail "no QEMU of job $j on $node"
			VCPU[$node.$j]=$pid
			for f in /proc/"$pid"/task/*/stat; do t0[$f]=$(cpu_ticks "$f"); done
		done
	done
	sleep 2
	for j; do
		for node in node0 node1; do
			best="" max=-1
			for f in /proc/"${VCPU[$node.$j]}"/task/*/stat; do
				d=$(($(cpu_ticks "$f") - ${t0[$f]:-0}))
				[ "$d" -gt "$max" ] && max=$d best=$f
			done
			[ "$max" -gt 0 ] || fail "job $j: no thread of its QEMU on $node used CPU"
			VCPU[$node.$j]=$best
		done
	done
}
# utime + stime of the thread whose stat file is $1 (0 if gone)
cpu_ticks() {
	local line
	{ read -r line <"$1"; } 2>/dev/null || { echo 0; return; }
	set -- ${line##*) }
	echo $((${12} + ${13}))
}
# cpu_turns A B ROUNDS: the vCPU threads of jobs A and B never run at the
# same time on a node, judged by the CPU time each thread used between two
# samples ~12 ms apart (schedstat, ns), whichever way the guests are
# switched.  A thread's state alone cannot tell: a vCPU paused by QMP stop
# is woken by every kick and, on a loaded host, waits runnable (R) for a CPU
# to go back to sleep, though it runs no guest code.  schedstat's runtime of
# a running thread is brought up to date at ticks and switches only, so each
# thread's figure for an interval can be up to a tick too high: both
# threads together used more CPU than the interval plus two ticks plus 1 ms
# (the outgoing guest's stop, well under 1 ms), each at least 2 ms: they ran
# at once.  (With one tick of slack, as before, two honest turns on a
# HZ=250 kernel failed the test once: 5438 + 6449 us in 7484 us.)  Turns are
# seen where one thread ran and the other used under a tenth of that: two
# guests left running together share the CPUs and never show that.
# The kernel's tick, from its jiffies over 0.2 s (4 ms, HZ=250, if unknown).
tick_ns() {
	local a b
	a=$(awk '/^jiffies:/ { print $2; exit }' /proc/timer_list 2>/dev/null)
	sleep 0.2
	b=$(awk '/^jiffies:/ { print $2; exit }' /proc/timer_list 2>/dev/null)
	if [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ]; then
		echo $((200000000 / (b - a)))
	else
		echo 4000000
	fi
}
TICK_NS=$(tick_ns)
cpu_turns() {
	local a=$1 b=$2 rounds=$3 i node t ra rb dt da db valid=0 seen_a=0 seen_b=0
	declare -A pt pa pb
	for ((i = 0; i < rounds; i++)); do
		for node in node0 node1; do
			t=${EPOCHREALTIME/./}
			{ read -r ra _ <"${VCPU[$node.$a]%/stat}/schedstat"; } 2>/dev/null || break 2
			{ read -r rb _ <"${VCPU[$node.$b]%/stat}/schedstat"; } 2>/dev/null || break 2
			if [ -n "${pt[$node]:-}" ]; then
				dt=$(((t - pt[$node]) * 1000)) da=$((ra - pa[$node])) db=$((rb - pb[$node]))
				if [ "$dt" -ge 6000000 ] && [ "$dt" -le 40000000 ]; then
					valid=$((valid + 1))
					# (runtime is accounted lazily, up to a tick late: one
					# thread alone can show more than the interval)
					if [ "$da" -ge 2000000 ] && [ "$db" -ge 2000000 ] &&
						[ $((da + db)) -gt $((dt + 2 * TICK_NS + 1000000)) ]; then
						# (a job being torn down is thawed for its kill)
						[ "$(job_state "$a")" = RUNNING ] && [ "$(job_state "$b")" = RUNNING ] || break 2
						fail "jobs $a and $b ran at once on $node: $((da / 1000)) + $((db / 1000)) us of vCPU time in $((dt / 1000)) us (round $i)"
					fi
					# one ran (0.5 ms or more: a loaded host gives it
					# less than the interval) while the other hardly did
					[ "$da" -ge 500000 ] && [ $((db * 10)) -le "$da" ] && seen_a=$((seen_a + 1))
					[ "$db" -ge 500000 ] && [ $((da * 10)) -le "$db" ] && seen_b=$((seen_b + 1))
				fi
			fi
			pt[$node]=$t pa[$node]=$ra pb[$node]=$rb
		done
		sleep 0.012
	done
	echo "cpu_turns: $valid intervals judged (tick $((TICK_NS / 1000)) us); job $a ran alone in $seen_a, job $b in $seen_b"
	[ "$valid" -ge 50 ] || fail "only $valid intervals of 6-40 ms judged"
	[ "$seen_a" -ge 5 ] && [ "$seen_b" -ge 5 ] || fail "no turns seen (job $a $seen_a, job $b $seen_b)"
}

# never_frozen A B: the cgroups of QMP-switched jobs A and B are never
# frozen over 3 s of samples while both run (alternation shows their vCPUs
# take turns): the dispatcher switches them by QMP, not by a cgroup gate.
never_frozen() {
	local j node f n=0 end=$((SECONDS + 3))
	while [ "$SECONDS" -lt "$end" ]; do
		for j; do
			for node in node0 node1; do
				{ read -r f <"$v2root/hec/$cname/$node/job.$j/cgroup.freeze"; } 2>/dev/null || continue
				[ "$f" = 0 ] && { n=$((n + 1)); continue; }
				# (a job being torn down is not switched any more)
				[ "$(job_state "$j")" = RUNNING ] || break 3
				fail "job $j is QMP-switched, but its cgroup on $node is frozen (after $n samples)"
			done
		done
		sleep 0.005
	done
	echo "cgroups of jobs $* never frozen in $n samples"
	[ "$n" -ge 100 ] || [ "$(job_state "$1")" != RUNNING ] || [ "$(job_state "$2")" != RUNNING ] ||
		fail "only $n cgroup.freeze samples of jobs $*"
}

note "guests switched by $methods"
find_vcpus "$a" "$b"
cpu_turns "$a" "$b" 400
if [ "$methods" = cgroup ]; then
	# The QEMU processes are frozen as groups: never both jobs' whole QEMU
	# asked to run (and not frozen) on a node.  (A vCPU thread's state
	# proves nothing more: the dispatcher thaws the entering guest right
	# after the leaving one's freeze write, which stops its threads' user
	# code at once, and a leaving vCPU thread preempted in the kernel by
	# the entering one shows R for up to a tick before it gets the CPU
	# back to enter the freezer, running no guest code.  cpu_turns bounds
	# what that costs.)
	alternation "$a" "$b" 400
fi
[ "$methods" != qmp ] || never_frozen "$a" "$b"

# A gang-switched job is checkpointed (its QEMUs write during their own
# slots) and restarted from it beside the other job: the restored QEMUs
# are switched as the old ones were.
# (A checkpoint takes seconds here; one that hangs would wait for the
# controller's ckpt_timeout: bounded, so that it fails as such.)
#
# On node1 a task of job a's cgroup sleeps in the kernel (a lookup in a
# FUSE file system that never answers: tests/tools/hec-stuckfs), so job a's
# freezes there are asked and never reached, as for a QEMU caught in a
# system call at the instant of a switch.  With slots of 300 ms (longer
# than the dispatcher's 50 ms wait for a stuck freeze, after which it lets
# the entering job run) the capture, off-slot 5 ms after the boundary,
# finds the guest asked frozen and not frozen: it must stop it by QMP and
# thaw it to be answered, not wait for a slot of its own (none comes while
# the capture holds it out of the gang).  (Only a cgroup-switched guest: a
# QMP one's cgroup is never frozen.)
note "checkpoint of job $a while it time-shares, and its restart"
STUCKFS="$HEC_BUILDDIR/tests/tools/hec-stuckfs"
stuck_pid="" fuse_pid=""
test_cleanup() {
	[ -z "$stuck_pid" ] || kill -9 "$stuck_pid" 2>/dev/null
	[ -z "$fuse_pid" ] || kill "$fuse_pid" 2>/dev/null
	[ -z "$fuse_pid" ] || wait $stuck_pid $fuse_pid 2>/dev/null
	umount -l "$TEST_DIR/mnt" 2>/dev/null
	return 0
}
m1=$(jq -r ".stats.vm_switch[] | select(.job == $a and .node == \"node1\") | .method" <<<"$st")
if [ "$m1" = cgroup ] && [ -c /dev/fuse ]; then
	"$HEC" gang set --slot 300 >/dev/null || fail "hec gang set --slot 300 failed"
	mkdir mnt
	"$STUCKFS" "$TEST_DIR/mnt" >stuckfs.out 2>&1 &
	fuse_pid=$!
	for i in $(seq 100); do grep -q ready stuckfs.out && break; sleep 0.1; done
	grep -q ready stuckfs.out || fail "cannot mount a FUSE file system: $(cat stuckfs.out)"
	# (it joins the cgroup, then looks the name up)
	sh -c "echo \$\$ >$v2root/hec/$cname/node1/job.$a/cgroup.procs && exec stat $TEST_DIR/mnt/vmgang" &
	stuck_pid=$!
	for i in $(seq 100); do grep -qx 'lookup vmgang' stuckfs.out && break; sleep 0.1; done
	grep -qx 'lookup vmgang' stuckfs.out || fail "the task in job $a's cgroup never reached the lookup: $(cat stuckfs.out)"
	grep -qx "$stuck_pid" "$v2root/hec/$cname/node1/job.$a/cgroup.procs" || fail "task $stuck_pid is not in job $a's cgroup on node1"
	for i in $(seq 100); do grep -q "node1: epoch .*: 2 slots of 300.000 ms" "$HEC_DIR/log/node1.log" && break; sleep 0.1; done
	grep -q "node1: epoch .*: 2 slots of 300.000 ms" "$HEC_DIR/log/node1.log" || fail "node1 never switched to 300 ms slots"
	# its freezes are asked and never reached from now on
	seen=0
	for i in $(seq 200); do
		grep -qx 1 "$v2root/hec/$cname/node1/job.$a/cgroup.freeze" &&
			grep -qx 'frozen 0' "$v2root/hec/$cname/node1/job.$a/cgroup.events" && { seen=1; break; }
		sleep 0.01
	done
	[ "$seen" = 1 ] || fail "job $a's cgroup on node1 never seen asked frozen and not frozen"
	note "job $a's freezes on node1 do not complete (a task in a FUSE lookup); slots of 300 ms"
elif [ "$m1" = cgroup ]; then
	note "no /dev/fuse: job $a is checkpointed with freezes that complete"
fi
e=$(timeout 180 "$HEC" ckpt --wait "$a") || fail "checkpoint of the gang-switched job $a failed (status $?)"
if [ -n "$stuck_pid" ]; then
	grep -q "node1: job $a: checkpoint $e: captured .* while switched out" "$HEC_DIR/log/node1.log" ||
		fail "node1 did not capture job $a off-slot: $(grep "job $a: checkpoint" "$HEC_DIR/log/node1.log")"
	# (a lookup the server has read ends only when the server goes: its
	# /dev/fuse closed aborts the connection)
	kill -9 "$stuck_pid"
	kill "$fuse_pid"
	wait "$stuck_pid" "$fuse_pid" 2>/dev/null
	stuck_pid="" fuse_pid=""
	umount -l "$TEST_DIR/mnt" 2>/dev/null
	"$HEC" gang set --slot 50 >/dev/null || fail "hec gang set --slot 50 failed"
fi
[[ $e =~ ^[0-9]+$ ]] || fail "hec ckpt --wait $a printed '$e'"
out=$("$HEC" restart "$a" 2>&1) || fail "hec restart $a: $out"
# restarted: the job runs again beside job $b, and its resumed guests'
# switch costs are measured anew (as at a boot)
resumed() {
	"$HEC" gang stats --json | jq -e "[.stats.vm_switch[] | select(.job == $a and .cgroup_us > 0 and
		.qmp_us > 0)] | length == 2" >/dev/null
}
for i in $(seq 300); do
	[ "$(job_field "$a" 'restarts | length')" = 1 ] && [ "$(job_state "$a")" = RUNNING ] && resumed && break
	sleep 1
done
resumed || fail "job $a's guests were not resumed and measured within 300 s: $("$HEC" gang stats --json | jq -c .stats.vm_switch)"
"$HEC" show "$a" --json | jq -e ".job.state == \"RUNNING\" and (.job.restarts | length) == 1 and
	.job.restarts[0].epoch == $e" >/dev/null ||
	fail "job $a after its restart from $e: $("$HEC" show "$a" --json | jq -c '.job | {state, reason, restarts}')"
[ "$(job_state "$b")" = RUNNING ] || fail "job $b is $(job_state "$b") after job $a's restart: too late to see them share"
[ "$(jq '.gang.nslots' <<<"$("$HEC" gang --json)")" = 2 ] || fail "the restarted job $a does not share the nodes with job $b"
find_vcpus "$a" "$b"
cpu_turns "$a" "$b" 200
# The restored guests were measured anew: with auto, a node under load may
# now find QMP the cheaper for one of them (seen: cgroup 850 us against QMP
# 718 us right after the restore), so the checks that depend on the way
# (vCPU thread states for cgroup freezes, cgroups never frozen for QMP)
# follow what the guests are switched by now; cpu_turns judged both ways.
st=$("$HEC" gang stats --json) || fail "gang stats failed"
m=$(jq -r '[.stats.vm_switch[].method] | unique | join(",")' <<<"$st")
[ "$VM_SWITCH" = auto ] || [ "$m" = "$VM_SWITCH" ] || fail "after the restart, guests are switched by $m: $st"
note "after the restart, guests switched by $m"
[ "$m" != cgroup ] || alternation "$a" "$b" 200
[ "$m" != qmp ] || never_frozen "$a" "$b"

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
