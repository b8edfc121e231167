#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A slow, lossy link on emulated hosts (tests/hosts/hec-hosts netem: tc's
# netem, or hec-linkem where the kernel has no sch_netem): host1's cable
# delays what crosses it by 50 ms each way and drops 1% of it, from before
# the daemons start.  (a) ping shows the delay on host1's link (a 100 ms
# round trip) and none on an unshaped one, in the same run; (b) a 2-host MPI
# job completes with the right result; (c) two --share jobs time-share both
# hosts in the same 50 ms slots: the hosts' clock offsets differ by at most
# 2 ms, and sampled, the hosts disagree on a job's state in at most 20% of
# the samples (a schedule half a slot off would disagree in about all of
# them, unsynchronised slots in about half); the epoch that makes them
# share starts 4 round trips of host1's link ahead.  (d) Then the delay one way
# only (host1's sending: tc's netem on its eth0 alone): the agents take the
# controller's clock from the probe of least round trip, offset = ((t2 -
# t1) + (t3 - t4)) / 2, whose error is half the asymmetry of the path, as
# for NTP or PTP without a configured asymmetry: host1 switches ~25 ms
# early, and `hec gang stats` cannot see it (it compares the switch
# instants in each host's own estimate of the controller's time).  All
# hosts share this machine's clock, so the difference of their offsets is
# that error: reported, and bounded by half the asymmetry plus 5 ms.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/hosts_lib.sh"

DELAY_MS=50
SPEC="delay ${DELAY_MS}ms loss 1%"
SLOT_MS=50
if command -v ping >/dev/null; then PING=ping
elif command -v busybox >/dev/null && busybox ping -c 1 127.0.0.1 >/dev/null 2>&1; then PING="busybox ping"
else skip "no ping (iputils-ping or busybox)"
fi
v2root=$(v2_mount)
[ -n "$v2root" ] || skip "the gang check reads cgroup v2 cgroup.events; no cgroup2 mount"

# hec-hosts says on stderr which one shapes (tc or hec-linkem)
hosts_shape() { "$HOSTS" netem "$HOSTS_DIR" 1 "$SPEC" "$SPEC" || fail "hec-hosts netem 1 '$SPEC' (both ways) failed"; }
hosts_up 2 "gang_slot = ${SLOT_MS}ms" "max_share = 2"
cd "$TEST_DIR"
cname=$(cluster_name)

# (a) min and average round trip in us of 10 pings from host0 (iputils'
# "rtt min/avg/max/mdev = ..." or busybox's "round-trip min/avg/max = ...")
rtt() {
	on_host 0 $PING -c 10 -i 0.1 "$(host_addr "$1")" |
		sed -n 's|^r.* = \([0-9.]*\)/\([0-9.]*\)/.*|\1 \2|p' | awk '{ printf "%d %d", $1 * 1000, $2 * 1000 }'
}
read -r smin savg <<<"$(rtt 1)"
read -r umin uavg <<<"$(rtt 2)" # the login host's link, unshaped
[ -n "${savg:-}" ] && [ -n "${uavg:-}" ] || fail "ping from host0 gave no round trips (shaped '${smin:-}', unshaped '${umin:-}')"
note "rtt host0-host1 (shaped) min $smin avg $savg us; host0-host2 (unshaped) min $umin avg $uavg us"
[ "$smin" -ge $(((2 * DELAY_MS - 5) * 1000)) ] ||
	fail "host1's link: rtt min ${smin} us, less than its ${DELAY_MS} ms delay each way"
[ "$smin" -lt $((3 * DELAY_MS * 1000)) ] || fail "host1's link: rtt min ${smin} us: delayed more than ${DELAY_MS} ms each way"
[ "$uavg" -lt 10000 ] || fail "unshaped link: rtt avg ${uavg} us"

# (b) a 2-host MPI job over the slow link
id=$(submit -N 2 -n 4 -J netemmpi -- "$MPI_CHECK" 20)
"$HEC" wait --timeout 60 "$id" || fail "hec wait $id exited $? (state $(job_state "$id"): $(job_field "$id" reason))"
[ "$(job_field "$id" 'nodelist | join(",")')" = "host0,host1" ] || fail "nodelist $(job_field "$id" nodelist)"
log=$("$HEC" logs "$id") || fail "hec logs $id failed"
grep -qx "result sum=2100 expected=2100 OK" <<<"$log" || fail "job $id: wrong or missing result: $log"
[ "$(grep -c '^rank [0-3] size 4 .* host1$' <<<"$log")" = 2 ] || fail "job $id: not 2 ranks on host1: $log"

# (c) gang slots across the slow link
ITERS=${HEC_HOSTS_TEST_ITERS:-10000000}
a=$(submit -N 2 -n 2 --share -J ga -- "$MPI_CHECK" "$ITERS")
b=$(submit -N 2 -n 2 --share -J gb -- "$MPI_CHECK" "$ITERS")
wait_state "$a" RUNNING
wait_state "$b" RUNNING
# The epoch that made them share starts 4 round trips of the slowest node
# ahead (its HEARTBEATs tell the controller the round trip of its clock
# estimate, ~100 ms here): the controller's last "starting in" says so.
lead=$(sed -n 's/.* epoch [0-9]*: .* starting in \([0-9]*\)\.[0-9] ms, sent to.*/\1/p' "$HEC_DIR/log/hecctld.log" | tail -n 1)
note "the controller's last epoch lead: ${lead:-none} ms"
[ -n "$lead" ] && [ "$lead" -ge $((4 * (2 * DELAY_MS - 5))) ] ||
	fail "the epoch sharing jobs $a and $b starts ${lead:-?} ms ahead, not 4 round trips of host1's $((2 * DELAY_MS)) ms link"
ALT_NODES="host0 host1" alternation "$a" "$b" 100
aligned "$a" 20
off() { jq -r ".stats.nodes[] | select(.name == \"$1\") | .offset_us | floor" <<<"$st"; }
# skew WHAT: hec's skew and the hosts' offsets now, printed; D: their difference (us)
skew() {
	local o0 o1
	st=$("$HEC" gang stats --json) || fail "hec gang stats failed"
	o0=$(off host0) o1=$(off host1)
	[ -n "$o0" ] && [ -n "$o1" ] || fail "hec gang stats has no offset of host0 or host1: $st"
	D=$((o1 - o0))
	note "skew, $1: hec's (each host's instants in its own estimate of the controller's clock)" \
		"p50 $(jq -r .stats.skew_us.p50 <<<"$st") p99 $(jq -r .stats.skew_us.p99 <<<"$st")" \
		"max $(jq -r .stats.skew_us.max <<<"$st") us over $(jq -r .stats.boundaries <<<"$st") boundaries;" \
		"on this machine's one clock host1 switches $D us before host0 (offset host1 $o1 - host0 $o0)"
}
"$HEC" gang stats
skew "${DELAY_MS} ms each way"
note "sampled: $ALIGN_OFF of $ALIGN_N samples disagree, ~$((ALIGN_OFF * SLOT_MS * 1000 / ALIGN_N)) us of a ${SLOT_MS} ms slot"
[ "${D#-}" -le 2000 ] ||
	fail "host1's clock offset is $D us from host0's over a link as slow each way: more than 2 ms"

# (d) the delay one way only: the offset of host1 moves by half the
# asymmetry at its next burst of probes (every 5 s)
"$HOSTS" netem "$HOSTS_DIR" 1 "$SPEC" || fail "hec-hosts netem 1 '$SPEC' failed"
for i in $(seq 40); do
	sleep 0.5
	skew "${DELAY_MS} ms one way (after $((i / 2)) s)" >/dev/null
	[ "${D#-}" -ge $((DELAY_MS * 1000 / 4)) ] && break
done
skew "${DELAY_MS} ms one way"
[ "${D#-}" -le $(((DELAY_MS / 2 + 5) * 1000)) ] ||
	fail "host1's clock offset is $D us from host0's: more than half the link's asymmetry (${DELAY_MS} ms) plus 5 ms"
# The delay both ways again: host1's offset comes back at its next burst
# of probes, and the jobs, which progress only while both hosts run them
# (half of each slot with host1 25 ms early, less on a loaded machine),
# finish at full pace.
hosts_shape
mpi_check_done "$ITERS" "$a" "$b"
# hec-linkem's counts of frames per direction, for the log (tc's netem: none)
"$HOSTS" netem "$HOSTS_DIR" 1 off || fail "hec-hosts netem 1 off failed"
echo "PASS: $TEST_NAME"
