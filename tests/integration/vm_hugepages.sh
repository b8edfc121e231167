#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# What backs a guest's RAM (hecd's vm_hugepages; doc/design.md "vm
# partitions"), on real guests, state then verify:
# - auto, with enough 2 MiB huge pages reserved: the guest's RAM is a
#   hugetlb memfd, all of it faulted in (HugetlbPages of its QEMU), the
#   agent says so; `hec ckpt --wait` captures it by background snapshot;
# - the pool emptied, a restart from that checkpoint comes up in anonymous
#   RAM (the agent says why) and counts on from the checkpoint; a
#   checkpoint of it, the pool filled again, and a restart from that one
#   comes up in huge pages and runs to the end: a checkpoint of either
#   backing loads into the other;
# - auto, the pool with room for one guest only: a 2-node job's two agents
#   start their guests at once; the kernel's reservation gives the pages to
#   one, the other's RAM is anonymous, and neither fails;
# - on, with no free huge page: the job fails, its reason naming the
#   setting, the pages wanted and the pages free; with enough, it runs in
#   huge pages.
# The first cluster's agents run with vm_hugepages = auto (off is the
# default).  The host's vm.nr_hugepages is changed for the test and put back
# at its end.
# hec-test-timeout: 900
. "$HEC_SRCDIR/tests/integration/lib.sh"

command -v jq >/dev/null || skip "jq not installed"
need_guests
NR=/proc/sys/vm/nr_hugepages
[ -w $NR ] && [ -d /sys/kernel/mm/hugepages/hugepages-2048kB ] ||
	skip "no 2 MiB huge pages to reserve here ($NR, /sys/kernel/mm/hugepages/hugepages-2048kB)"
[ "$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo)" = 2048 ] ||
	skip "the default huge page size is not 2 MiB (vm.nr_hugepages reserves those)"
OLD_NR=$(cat $NR)
test_cleanup() { echo "$OLD_NR" >$NR; }
# pool PAGES: the host's pool at PAGES more than before the test
pool() {
	echo $((OLD_NR + $1)) >$NR
	[ "$(cat $NR)" -ge $((OLD_NR + $1)) ] || skip "the kernel reserved $(cat $NR) of $((OLD_NR + $1)) huge pages"
}
free_pages() {
	local d=/sys/kernel/mm/hugepages/hugepages-2048kB
	echo $(($(cat $d/free_hugepages) - $(cat $d/resv_hugepages)))
}
# Plenty for our guest (128 pages) and a restarted one while the old goes,
# and for guests of other tests running at the same time, which take them
# too (auto).
PLENTY=1024

LAST=400
cat >"$TEST_DIR/count.sh" <<EOF
#!/bin/sh
#HEC -N 1 -t 15:00 --partition vm --vcpus 1 --mem 256M
i=0
while [ \$i -lt $LAST ]; do i=\$((i + 1)); echo "tick \$i"; sleep 0.2; done
echo done
EOF
ticks() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^tick //p'; }
last_tick() { ticks "$1" | tail -n 1; }
wait_tick() {
	local i
	for i in $(seq 1 1200); do
		[ "$(last_tick "$1")" -ge "$2" ] 2>/dev/null && return 0
		job_state "$1" | grep -q RUNNING || fail "job $1 is $(job_state "$1") ($(job_field "$1" reason)) before tick $2"
		sleep 0.2
	done
	fail "job $1 did not reach tick $2 (last: $(last_tick "$1"))"
}
# backings J: per guest of job J, "NODE huge" or "NODE anon": what the
# agent's last word on its RAM says, checked against its QEMU (huge: all
# 256 MiB in hugetlb pages, the RAM a file backend; anon: no hugetlb page)
backings() {
	local pid node line hp args i n=0
	for i in $(seq 1 100); do
		[ -n "$(pgrep -f -- "-name hec-job$1-node[0-9]+ .*$TEST_DIR/")" ] && break
		sleep 0.2
	done
	for pid in $(pgrep -f -- "-name hec-job$1-node[0-9]+ .*$TEST_DIR/"); do
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline")
		node=$(sed -E "s/.*-name hec-job$1-(node[0-9]+) .*/\1/" <<<"$args")
		line=$(grep -E "job $1: QEMU pid $pid: 1 vCPUs, 256 MB " "$HEC_DIR/log/$node.log" | tail -n 1)
		hp=$(awk '/^HugetlbPages:/ { print $2 }' "/proc/$pid/status")
		echo "$node QEMU $pid: HugetlbPages $hp kB; agent: ${line#*QEMU pid }" >&2
		case $line in
		*"256 MB in 2 MiB huge pages"*)
			[[ $args == *"-object memory-backend-file,id=pc.ram,size=256M,"* && $args == *",memory-backend=pc.ram "* ]] ||
				fail "QEMU $pid has no hugetlb RAM backend: $args"
			[ "$hp" = 262144 ] || fail "QEMU $pid holds $hp kB of huge pages, not its 256 MiB"
			echo "$node huge" ;;
		*"256 MB anonymous (vm_hugepages = auto: "*)
			[ "$hp" = 0 ] || fail "QEMU $pid holds $hp kB of huge pages, its RAM said anonymous"
			echo "$node anon" ;;
		*) fail "job $1's guest on $node: no word on its RAM: '$line'" ;;
		esac
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "no QEMU of job $1"
}
# ram J HOW: every guest of job J in HOW (huge or anon)
ram() {
	local b
	b=$(backings "$1") || exit 1
	grep -qv " $2\$" <<<"$b" && fail "job $1's guests: $(tr '\n' ' ' <<<"$b"), expected all $2"
	return 0
}
ckpt() {
	local e
	e=$("$HEC" ckpt --wait "$1" 2>"$TEST_DIR/ckpt.err") || fail "hec ckpt --wait $1: $(cat "$TEST_DIR/ckpt.err")"
	[[ $e =~ ^[0-9]+$ ]] || fail "hec ckpt --wait $1 printed '$e'"
	echo "$e"
}
# restart J E N: from checkpoint E, restart N of the job, until it counts on
restart() {
	local i
	"$HEC" restart "$1" --epoch "$2" >/dev/null || fail "hec restart $1 --epoch $2 failed"
	for i in $(seq 1 1200); do
		"$HEC" show "$1" --json | jq -e --argjson n "$3" \
			'.job.state == "RUNNING" and (.job.restarts | length) == $n and (.job.restarts[-1].nodes | length) > 0' >/dev/null &&
			break
		sleep 0.1
	done
	[ "$(job_state "$1")" = RUNNING ] || fail "job $1 is $(job_state "$1") ($(job_field "$1" reason)) after restart $3"
}

note "auto, $PLENTY huge pages more: the guest's RAM in huge pages, checkpointed"
pool $PLENTY
cluster_up 2 --storage 2 --vm-hugepages auto
cd "$TEST_DIR"
j=$(submit count.sh)
wait_tick "$j" 3
ram "$j" huge
e1=$(ckpt "$j")
t1=$(last_tick "$j")
grep -E "job $j: .*no background snapshot" "$HEC_DIR"/log/node*.log &&
	fail "the guest in huge pages was not captured by background snapshot"
"$HEC" ckpts "$j" --json | jq -e ".ckpts[] | select(.epoch == $e1) | .parts[0].pause_us > 0 and .bytes > 0" >/dev/null ||
	fail "checkpoint $e1 as listed: $("$HEC" ckpts "$j" --json)"
echo "checkpoint $e1 at tick $t1: $("$HEC" ckpts "$j" | tail -n 1)"

note "the pool emptied: restart from $e1 into anonymous RAM"
echo 0 >$NR
wait_tick "$j" $((t1 + 5))
restart "$j" "$e1" 1
wait_tick "$j" $((t1 + 10))
ram "$j" anon
grep -q "256 MB anonymous (vm_hugepages = auto: 256 MB of RAM need 128 free 2 MiB huge pages, 0 are (vm.nr_hugepages))" "$HEC_DIR"/log/node*.log ||
	fail "no agent said why the restarted guest's RAM is anonymous"
first=$(ticks "$j" | awk -v t="$t1" '$1 == t + 1 { n++ } END { print n + 0 }')
[ "$first" -ge 2 ] || fail "tick $((t1 + 1)) printed $first times: the restart did not go on from $e1's tick $t1"
e2=$(ckpt "$j")
t2=$(last_tick "$j")
echo "checkpoint $e2 of the anonymous guest at tick $t2"

note "the pool filled again: restart from $e2 into huge pages, to the end"
pool $PLENTY
wait_tick "$j" $((t2 + 5))
restart "$j" "$e2" 2
wait_tick "$j" $((t2 + 10))
ram "$j" huge
"$HEC" wait "$j" || fail "job $j: $(job_state "$j") ($(job_field "$j" reason))"
"$HEC" logs "$j" | tail -n 1 | grep -qx done || fail "job $j did not count to its end: $("$HEC" logs "$j" | tail -n 2)"
echo "job $j: restarted twice across backings, counted to $LAST"

note "auto, room for one guest of a 2-node job: two agents start theirs at once, one gets the pages, the other anonymous RAM, none fails"
echo $(($(cat $NR) - $(free_pages) + 128 + 64)) >$NR
echo "pool $(cat $NR), $(free_pages) pages free"
sed -i 's/^#HEC -N 1 /#HEC -N 2 /' "$TEST_DIR/count.sh"
j=$(submit count.sh)
wait_tick "$j" 3
b=$(backings "$j") || exit 1
[ "$(grep -c ' huge$' <<<"$b")" = 1 ] && [ "$(grep -c ' anon$' <<<"$b")" = 1 ] ||
	fail "job $j's guests: $(tr '\n' ' ' <<<"$b"), expected one in huge pages and one anonymous"
"$HEC" cancel "$j" >/dev/null
"$HEC" cluster down >/dev/null || fail "cluster down failed"
sed -i 's/^#HEC -N 2 /#HEC -N 1 /' "$TEST_DIR/count.sh"

note "on: no free huge page fails the job, naming the cause; enough runs it in huge pages"
export HEC_DIR="$TEST_DIR/cluster-on"
cluster_up 1 --vm-hugepages on
echo 0 >$NR
[ "$(free_pages)" -lt 128 ] || skip "$(free_pages) huge pages stay free with vm.nr_hugepages 0"
j=$(submit count.sh)
for i in $(seq 1 600); do
	case $(job_state "$j") in PENDING | RUNNING) sleep 0.2 ;; *) break ;; esac
done
[ "$(job_state "$j")" = FAILED ] || fail "job $j is $(job_state "$j"), expected FAILED without huge pages"
reason=$(job_field "$j" reason)
[[ $reason == *"vm_hugepages = on: 256 MB of RAM need 128 free 2 MiB huge pages, "*" are (vm.nr_hugepages)"* ]] ||
	fail "job $j failed with '$reason'"
echo "without huge pages: $reason"
[ -z "$(pgrep -f -- "-name hec-job$j-node[0-9]+ .*$TEST_DIR/")" ] || fail "a QEMU of the failed job $j runs"
pool $PLENTY
j=$(submit count.sh)
wait_tick "$j" 3
ram "$j" huge
"$HEC" cancel "$j" >/dev/null
