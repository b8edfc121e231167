#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Every partition has a process limit (pids.max, hecd's job_pids_max): by
# default auto (512 tasks per CPU of the node, at least 4096); a job that
# forks past it gets fork failures inside its own partition, and the agent,
# the node and the next job are not touched.
. "$HEC_SRCDIR/tests/integration/lib.sh"

# The pids.max of the job that runs this script, from its own cgroup.
cat >"$TEST_DIR/limit.sh" <<'EOF'
#!/bin/sh
v1=$(awk -F: '$2 == "pids" { print $3 }' /proc/self/cgroup)
m1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)pids(,|$)/ { print $2; exit }' /proc/self/mounts)
v2=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
m2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [ -n "$v1" ] && [ -n "$m1" ] && [ -f "$m1$v1/pids.max" ]; then
	d=$m1$v1
elif [ -n "$m2" ] && [ -f "$m2$v2/pids.max" ]; then
	d=$m2$v2
else
	echo "no-pids-group"; exit 0
fi
echo "group=$d"
echo "max=$(cat "$d/pids.max")"
if [ "${1:-}" = fork ]; then
	# (a shell whose fork fails ends: this one's child, not this one)
	sh -c 'i=0; while [ $i -lt 80 ]; do sleep 4 & i=$((i + 1)); done; wait' 2>"$2"
	echo "current=$(cat "$d/pids.current")"

fi
exit 0
EOF
chmod +x "$TEST_DIR/limit.sh"
awk '$3 == "cgroup" && $4 ~ /(^|,)pids(,|$)/ { f = 1 } $3 == "cgroup2" { print $2 }' /proc/self/mounts |
	while read -r m; do cat "$m/cgroup.controllers" 2>/dev/null; done | grep -qw pids ||
	awk '$3 == "cgroup" && $4 ~ /(^|,)pids(,|$)/ { f = 1 } END { exit !f }' /proc/self/mounts ||
	skip "no pids controller on this host (neither a v1 pids hierarchy nor pids in cgroup v2)"

cluster_up 1
cd "$TEST_DIR"

note "the default limit: auto"
a=$(submit -N 1 -n 1 -o "$TEST_DIR/a.out" "$TEST_DIR/limit.sh")
"$HEC" wait --timeout 30 "$a" >/dev/null || fail "job $a: $(job_state "$a")"
cat "$TEST_DIR/a.out"
grep -q '^group=.*/hec/.*/node0/job\.'"$a"'$' "$TEST_DIR/a.out" ||
	fail "job $a does not run in a pids group of its own: $(head -n 1 "$TEST_DIR/a.out")"
max=$(sed -n 's/^max=//p' "$TEST_DIR/a.out")
case $max in
'' | max | *[!0-9]*) fail "job $a's pids.max is '$max', not a number" ;;
esac
[ "$max" -ge 4096 ] || fail "job $a's pids.max is $max, under auto's 4096"

note "job_pids_max = 40: a job forking 80 children"
pid=$(daemon_pid node0)
kill "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
echo "job_pids_max = 40" >>"$HEC_DIR/node0.conf"
start_daemon node0 "$HECD"
wait_node_state node0 IDLE
b=$(submit -N 1 -n 1 -o "$TEST_DIR/b.out" "$TEST_DIR/limit.sh" fork "$TEST_DIR/b.err")
"$HEC" wait --timeout 60 "$b" >/dev/null || fail "job $b: $(job_state "$b")"
cat "$TEST_DIR/b.out"
grep -q '^max=40$' "$TEST_DIR/b.out" || fail "job $b's pids.max is not 40: $(grep max= "$TEST_DIR/b.out")"
cur=$(sed -n 's/^current=//p' "$TEST_DIR/b.out")
[ -n "$cur" ] && [ "$cur" -le 40 ] || fail "job $b held '$cur' tasks, over its limit of 40"
[ -s "$TEST_DIR/b.err" ] || fail "job $b forked 80 children with a limit of 40 and no fork failed"
head -n 2 "$TEST_DIR/b.err"
kill -0 "$(daemon_pid node0)" 2>/dev/null || fail "hecd died"

note "a bad job_pids_max is refused, saying why"
out=$("$HECD" -f "$HEC_DIR/node0.conf" -o job_pids_max=lots 2>&1) && fail "hecd took job_pids_max=lots"
echo "$out"
echo "$out" | grep -q "job_pids_max 'lots'" || fail "hecd's refusal does not name job_pids_max: $out"

note "the next job runs"
c=$(submit -N 1 -n 1 -- /bin/true)
"$HEC" wait --timeout 30 "$c" >/dev/null || fail "job $c after the limited one: $(job_state "$c")"
echo "PASS"
