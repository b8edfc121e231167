#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# CLI and settings claims of README.md and doc/design.md:
# - `hec wait` exits 128+N for a job killed by signal N;
# - which cluster a command talks to: --dir D, else $HEC_DIR, else the one
#   `hec cluster up` started last (~/.hec/current), else ~/.hec/cluster;
# - `timeslice = none` co-locates share jobs without ever freezing them and
#   turns preemption off (a higher-priority job waits).
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/claims_lib.sh"

cd "$TEST_DIR"
marker=heccli$$

note "hec wait: 128 + the signal that killed the job"
cluster_up 1
cat >sig.sh <<'EOF'
#!/bin/sh
#HEC -N 1 -n 1
echo about to die
kill -USR1 $$
echo survived
EOF
j=$(submit sig.sh)
wait_rc "$j" $((128 + 10))
[ "$(job_state "$j")" = FAILED ] || fail "job $j is $(job_state "$j")"
[ "$(job_field "$j" signal)" = 10 ] || fail "job $j: signal $(job_field "$j" signal), expected 10 (SIGUSR1)"
"$HEC" logs "$j" | grep -q survived && fail "the job went on after its signal"
"$HEC" cluster down >/dev/null || fail "cluster down failed"

note "which cluster: --dir, then \$HEC_DIR, then ~/.hec/current, then ~/.hec/cluster"
c1=$TEST_DIR/c1 c2=$TEST_DIR/c2
test_cleanup() {
	local d
	for d in "$c1" "$c2"; do "$HEC" --dir "$d" cluster down >/dev/null 2>&1; done
	return 0
}
nohec() { env -u HEC_DIR "$HEC" "$@"; }
at() { # which cluster directory `hec ARGS cluster status` reports
	"$@" cluster status 2>&1 | sed -n 's/^cluster [^ ]* at //p'
}
nohec cluster up --nodes 1 --dir "$c1" --node-timeout 2s --heartbeat 200ms >/dev/null || fail "cluster up --dir $c1"
[ "$(cat "$HOME/.hec/current")" = "$c1" ] || fail "~/.hec/current is '$(cat "$HOME/.hec/current")', expected $c1"
[ "$(at nohec)" = "$c1" ] || fail "with no --dir nor HEC_DIR, hec talks to '$(at nohec)', not the last cluster up $c1"
nohec cluster up --nodes 1 --dir "$c2" --node-timeout 2s --heartbeat 200ms >/dev/null || fail "cluster up --dir $c2"
[ "$(at nohec)" = "$c2" ] || fail "hec talks to '$(at nohec)', not the last cluster up $c2"
[ "$(at env HEC_DIR="$c1" "$HEC")" = "$c1" ] || fail "HEC_DIR=$c1: hec talks to '$(at env HEC_DIR="$c1" "$HEC")'"
[ "$(at env HEC_DIR="$c1" "$HEC" --dir "$c2")" = "$c2" ] || fail "--dir $c2 with HEC_DIR=$c1: hec talks to '$(at env HEC_DIR="$c1" "$HEC" --dir "$c2")'"
[ "$(at nohec --dir "$c1")" = "$c1" ] || fail "--dir $c1: hec talks to '$(at nohec --dir "$c1")'"
# Jobs land where the same choice says.
nohec submit -J via-current -- /bin/true >/dev/null || fail "submit via ~/.hec/current"
HEC_DIR=$c1 "$HEC" submit -J via-env -- /bin/true >/dev/null || fail "submit via HEC_DIR"
HEC_DIR=$c1 "$HEC" --dir "$c2" submit -J via-dir -- /bin/true >/dev/null || fail "submit via --dir"
names() { "$HEC" --dir "$1" queue --all --json | jq -r '[.jobs[].name] | sort | join(",")'; }
[ "$(names "$c1")" = via-env ] || fail "cluster c1 has jobs '$(names "$c1")', expected via-env"
[ "$(names "$c2")" = via-current,via-dir ] || fail "cluster c2 has jobs '$(names "$c2")', expected via-current,via-dir"
# down the current one: ~/.hec/current goes, and the default is ~/.hec/cluster
nohec cluster down >/dev/null || fail "cluster down via ~/.hec/current"
[ ! -e "$HOME/.hec/current" ] || fail "~/.hec/current still names $(cat "$HOME/.hec/current") after its cluster went down"
out=$(nohec queue 2>&1) && fail "hec queue answered with no cluster at ~/.hec/cluster: $out"
grep -qF "no cluster at $HOME/.hec/cluster" <<<"$out" || fail "with no current cluster hec says '$out', not ~/.hec/cluster"
"$HEC" --dir "$c1" cluster down >/dev/null || fail "cluster down --dir $c1"

note "timeslice none: share jobs run side by side, never frozen, never preempted"
cluster_up 2 --timeslice none --slot 50ms --max-share 2
claims_setup
touch hold
busy="while [ -e $TEST_DIR/hold ]; do i=0; while [ \$i -lt 500 ]; do i=\$((i + 1)); done; sleep 0.002; done"
a=$(submit -N 2 -n 2 --share -J ts-a -- /bin/sh -c "$busy; echo $marker-a")
b=$(submit -N 2 -n 2 --share -J ts-b -- /bin/sh -c "$busy; echo $marker-b")
wait_state "$a" RUNNING
wait_state "$b" RUNNING
g=$("$HEC" gang --json)
[ "$(jq -r '.gang.timeslice' <<<"$g")" = none ] || fail "hec gang says timeslice $(jq -r '.gang.timeslice' <<<"$g")"
[ "$(jq '.gang.nslots' <<<"$g")" = 1 ] || fail "timeslice none publishes $(jq '.gang.nslots' <<<"$g") slots"
for i in $(seq 100); do [ -n "$(cg_pids node1 "$a")" ] && [ -n "$(cg_pids node1 "$b")" ] && break; sleep 0.1; done
usage() { sed -n 's/^usage_usec //p' "$v2root/hec/$cname/$1/job.$2/cpu.stat"; }
declare -A u0
for n in node0 node1; do for j in $a $b; do u0[$n,$j]=$(usage $n "$j"); done; done
end=$((${EPOCHREALTIME/./} + 2000000))
while [ "${EPOCHREALTIME/./}" -lt $end ]; do
	for n in node0 node1; do
		for j in $a $b; do
			[ "$(freeze_req $n "$j")" = 0 ] || fail "job $j frozen on $n under timeslice none"
		done
	done
	sleep 0.005
done
for n in node0 node1; do for j in $a $b; do
	[ "$(usage $n "$j")" -gt "${u0[$n,$j]}" ] || fail "job $j used no CPU on $n in 2 s"
done; done
h=$(submit -N 2 -n 2 --share --priority 10 -J ts-high -- /bin/true)
sleep 1
[ "$(job_state "$h")" = PENDING ] || fail "higher-priority job $h is $(job_state "$h") under timeslice none (no preemption)"
for j in $a $b; do [ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") beside the waiting job $h"; done
rm hold
wait_rc "$a" 0
wait_rc "$b" 0
wait_rc "$h" 0
echo "PASS: $TEST_NAME"
