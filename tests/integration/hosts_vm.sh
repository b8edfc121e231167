#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# vm partitions on two emulated hosts (tests/hosts/hec-hosts; QEMU under TCG
# here), the daemons configured as on a real cluster, a storage server on
# the login host:
# - a 2-host vm MPI job: its ranks run in the guests of host0 and host1
#   (each guest named as its node, the host name) with the right result,
#   and 8 MB sent between the guests (hec-rsh, the job network that the
#   agents relay) cross the hosts' bridge from host1 (its port's counters):
#   host1's agent joined host0's switch over the network;
# - a 2-host vm job checkpointed (`hec ckpt --wait`, both guests' parts on
#   the server at the login host's address) and restarted (`hec restart`)
#   runs on from the checkpoint's position to its end, its guests still
#   talking across the hosts; restarted again from it on host1 and host2
#   (`--nodes`), host0's guest now restored on host1, whose agent is the
#   job network's hub that host2's joins, it runs the same again.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/hosts_lib.sh"

need_guests
PI="$HEC_BUILDDIR/examples/mpi_pi"

hosts_up 3 # host2: the second restart
cd "$TEST_DIR"

# A storage server on the login host, configured as `hec cluster up
# --storage` configures its own (doc/config.md) but for its address: the
# default, all of the host's (0.0.0.0:7100), as an administrator would
# leave it; `cluster down` stops it by its pid file.
mkdir -p "$HEC_DIR/store/s0/data"
cat >"$HEC_DIR/store/s0/hecstored.conf" <<EOF
# written by hosts_vm.sh
name = s0
dir = $HEC_DIR/store/s0/data
controller = host0:6817
key_file = $HEC_DIR/cluster.key
EOF
setsid "$HOSTS" exec "$HOSTS_DIR" "$LOGIN" "$HECSTORED" -f "$HEC_DIR/store/s0/hecstored.conf" \
	</dev/null >>"$HEC_DIR/log/s0.log" 2>&1 &
echo $! >"$HEC_DIR/run/s0.pid"
disown
wait_store s0 up 20

# rx_p1: bytes the bridge received from host1 (its port p1)
rx_p1() { ip -n "$HOSTS_PREFIX-br" -s -j link show p1 | jq '.[0].stats64.rx.bytes'; }

note "a 2-host vm MPI job; 8 MB from host1's guest to host0's"
cat >mpi.sh <<EOF
#!/bin/sh
#HEC -N 2 -n 2 -t 5:00 --partition vm --vcpus 1 --mem 256M --vm-file $PI
# (no guest of host1 reached: end now, not when mpiexec times out)
peer=\$(hec-rsh host1 hostname) || exit 1
echo "batch on \$(hostname), peer \$peer"
echo "bytes \$(hec-rsh host1 'head -c 8000000 /dev/zero' | wc -c)"
mpiexec -n 2 $PI
EOF
rx0=$(rx_p1)
t0=$(date +%s)
j=$(submit mpi.sh)
"$HEC" wait --timeout 300 "$j" ||
	fail "vm job $j: $(job_state "$j") ($(job_field "$j" reason)); output: $("$HEC" logs "$j")"
rx1=$(rx_p1)
note "vm job took $(($(date +%s) - t0)) s, boot included"
log=$("$HEC" logs "$j")
echo "$log"
[ "$(job_field "$j" 'nodelist | join(",")')" = "host0,host1" ] || fail "nodelist $(job_field "$j" nodelist)"
grep -q '^pi ~= 3\.14159.*, 2 ranks' <<<"$log" || fail "job $j printed no pi"
grep -q '^rank 0 of 2 on host0 ' <<<"$log" || fail "rank 0 did not run in host0's guest"
grep -q '^rank 1 of 2 on host1 ' <<<"$log" || fail "rank 1 did not run in host1's guest"
grep -qx 'batch on host0, peer host1' <<<"$log" || fail "the guests are not named host0 and host1"
grep -qx 'bytes 8000000' <<<"$log" || fail "8 MB from host1's guest did not arrive whole"
echo "bridge port of host1: $((rx1 - rx0)) bytes in during the job"
[ $((rx1 - rx0)) -ge 8000000 ] || fail "the 8 MB did not cross the bridge from host1 (only $((rx1 - rx0)) bytes)"
grep -q "job $j.*host1 joined the job's network" "$HEC_DIR/log/host0.log" ||
	fail "host0's agent logged no join of host1 for job $j"
note "a 2-host vm job checkpointed, then restarted from the checkpoint"
LAST=120
cat >count.sh <<EOF
#!/bin/sh
#HEC -N 2 -t 5:00 --partition vm --vcpus 1 --mem 256M
i=0
while [ \$i -lt $LAST ]; do i=\$((i + 1)); echo "tick \$i from \$(hec-rsh host1 hostname)"; sleep 0.1; done
echo done
EOF
ticks() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^tick \([0-9]*\) .*/\1/p'; }
last_tick() { ticks "$1" | tail -n 1; }
wait_tick() {
	local i
	for i in $(seq 1 600); do
		[ "$(last_tick "$1")" -ge "$2" ] 2>/dev/null && return 0
		job_state "$1" | grep -q RUNNING || fail "job $1 is $(job_state "$1") before tick $2"
		sleep 0.2
	done
	fail "job $1 did not reach tick $2 (last: $(last_tick "$1"))"
}
c=$(submit count.sh)
wait_tick "$c" 5
a=$(last_tick "$c")
e=$("$HEC" ckpt --wait "$c" 2>"$TEST_DIR/ckpt.err") || fail "hec ckpt --wait $c: $(cat "$TEST_DIR/ckpt.err")"
[[ $e =~ ^[0-9]+$ ]] || fail "hec ckpt --wait $c printed '$e'"
b=$(last_tick "$c")
"$HEC" ckpts "$c"
"$HEC" ckpts "$c" --json | jq -e ".ckpts[0] | .epoch == $e and (.parts | length) == 2 and
	.parts[0].node == \"host0\" and .parts[1].node == \"host1\" and .bytes > 0" >/dev/null ||
	fail "checkpoint $e as listed: $("$HEC" ckpts "$c" --json)"
compgen -G "$HEC_DIR/store/s0/data/objects/$c/$e/p1.*" >/dev/null || fail "s0 holds no chunk of host1's part of $c/$e"
wait_tick "$c" $((b + 5))
high=$(last_tick "$c")
out=$("$HEC" restart "$c" --epoch "$e" 2>&1) || fail "hec restart $c --epoch $e: $out"
"$HEC" wait --timeout 300 "$c" || fail "job $c after its restart: $(job_state "$c") ($(job_field "$c" reason))"
"$HEC" show "$c" --json | jq -e ".job.nodelist == [\"host0\", \"host1\"] and (.job.restarts | length) == 1 and
	.job.restarts[0].epoch == $e" >/dev/null || fail "job $c's restart: $("$HEC" show "$c" --json | jq -c .job)"
back=$(ticks "$c" | awk 'NR > 1 && $1 < prev && !seen { seen = 1 } seen { print } { prev = $1 }')
first=$(head -n 1 <<<"$back")
echo "ticks: up to $high before the restart, checkpoint $e asked at tick $a, committed by tick $b; the restored guests went on from $first"
[ -n "$first" ] && [ "$first" -le $((b + 1)) ] && [ "$first" -ge "$a" ] ||
	fail "the count went back to '$first', not to checkpoint $e's position (from $a, by $b)"
awk -v f="$first" -v last=$LAST 'NR == 1 && $1 != f { exit 1 } NR > 1 && $1 != p + 1 { exit 1 } { p = $1 } END { exit p != last }' <<<"$back" ||
	fail "after the restart the count did not run on by one to $LAST"
bad=$("$HEC" logs "$c" | grep '^tick ' | grep -v ' from host1$' | head -n 3)
[ -z "$bad" ] || fail "ticks without host1's answer over the job network: $bad"
"$HEC" logs "$c" | tail -n 1 | grep -qx 'done' || fail "the job's last line is not 'done'"

note "restarted from checkpoint $e on host1 and host2"
out=$("$HEC" restart "$c" --epoch "$e" --nodes host1,host2 2>&1) || fail "hec restart $c --nodes host1,host2: $out"
"$HEC" wait --timeout 300 "$c" || fail "job $c restarted on host1,host2: $(job_state "$c") ($(job_field "$c" reason))"
[ "$(job_field "$c" 'nodelist | join(",")')" = "host1,host2" ] || fail "job $c ran on $(job_field "$c" nodelist)"
again=$("$HEC" logs "$c" | sed '1,/^done$/d')
echo "after the second restart: $(grep -c '^tick ' <<<"$again") ticks, from $(sed -n '1s/^tick \([0-9]*\) .*/\1/p' <<<"$again")"
# the same guests' state again: the count goes on from the same tick
awk -v f="$first" -v last=$LAST '/^tick / { n++; if ((n == 1 && $2 != f) || (n > 1 && $2 != p + 1) || $4 != "host1") exit 1; p = $2 }
	END { exit p != last }' <<<"$again" ||
	fail "on host1,host2 the count did not run from $first by one to $LAST, each with host1's answer"
tail -n 1 <<<"$again" | grep -qx 'done' || fail "the job's last line on host1,host2 is not 'done'"
grep -q "job $c: host2 joined the job's network" "$HEC_DIR/log/host1.log" ||
	fail "host1's agent (the hub now) logged no join of host2 for job $c"
echo "PASS: $TEST_NAME"
