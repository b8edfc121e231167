#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A hecd restart kills no vm job: QEMU outlives hecd's kill -9, and the
# restarted hecd re-attaches to the guest (its QMP monitors and guest
# channel reconnect), so the batch step's output and exit status arrive as
# if nothing happened, also when the step ended while hecd was down; the
# guests of a job on two nodes reach each other again over the job network.
# A guest that is gone by then fails its job with the reason, never leaving
# it RUNNING.
. "$HEC_SRCDIR/tests/integration/lib.sh"

need_guests
# (a node silent past its timeout would fail its jobs: here it comes back)
cluster_up 1 --node-timeout 60s
cd "$TEST_DIR"

qemu_of() { procs_with "hec-job$1-node0 .*$TEST_DIR/"; }
out_has() { # JOB TEXT: the job's output file holds the line, within 60 s
	local i f
	f=$(job_field "$1" output)
	for i in $(seq 300); do grep -qx "$2" "$f" 2>/dev/null && return 0; sleep 0.2; done
	fail "job $1's output $f has no line '$2': $(cat "$f" 2>/dev/null)"
}
# A real cluster's hecd listens on a fixed port (6818), which the other
# nodes' links to the job network come back to; the test cluster's pick
# one: the restarted hecd takes the one it had.
restart_hecd() { # SIGNAL [NODE]
	local node=${2:-node0} addr
	addr=$(sed -n 's/.* bridges at \([0-9.:]*\),.*/\1/p' "$HEC_DIR/log/$node.log" | tail -n 1)
	[ -n "$addr" ] || fail "no bridge address of $node in its log"
	sed -i "s/^listen = .*/listen = $addr/" "$HEC_DIR/$node.conf"
	restart_daemon "$node" "$HECD" "" "$1"
}

note "kill -9 of hecd, then an orderly stop, while the batch step sleeps in the guest"
cat >job.sh <<'EOS'
#!/bin/sh
#HEC -N 1 -n 1 -t 5:00 --partition vm --vcpus 1
echo first-line
sleep 20
echo second-line
exit 3
EOS
j=$(submit job.sh)
wait_state "$j" RUNNING 180
out_has "$j" first-line
qpid=$(qemu_of "$j")
[ -n "$qpid" ] || fail "no QEMU process for job $j"
for sig in KILL TERM; do
	restart_hecd $sig
	wait_node_state node0 ALLOCATED
	[ "$(qemu_of "$j")" = "$qpid" ] || fail "QEMU $qpid of job $j did not outlive hecd's SIG$sig"
	"$HEC" show "$j" | grep -q 'JobState=RUNNING' ||
		fail "job $j is not RUNNING after hecd's SIG$sig and restart: $("$HEC" show "$j")"
done
"$HEC" wait --timeout 120 "$j"
state=$(job_state "$j")
reason=$(job_field "$j" reason)
echo "job $j: $state: $reason"
[ "$state" = FAILED ] || fail "job $j is $state, not FAILED by its exit code 3"
case $reason in *"exit code 3"*) ;; *) fail "job $j's reason is '$reason', not its exit code 3" ;; esac
out_has "$j" first-line
out_has "$j" second-line
for i in $(seq 100); do [ -z "$(qemu_of "$j")" ] && break; sleep 0.2; done
[ -z "$(qemu_of "$j")" ] || fail "QEMU of job $j left running: $(qemu_of "$j")"

note "a step that ends while hecd is down: its output and exit wait in the guest"
cat >quick.sh <<'EOS'
#!/bin/sh
#HEC -N 1 -n 1 -t 5:00 --partition vm --vcpus 1
echo before
sleep 3
echo after
exit 5
EOS
q=$(submit quick.sh)
wait_state "$q" RUNNING 180
out_has "$q" before
kill -9 "$(daemon_pid node0)"
# (long enough for the step to end on an idle machine; on a busy one it
# ends after the restart, and the test passes the other way)
sleep 8
grep -qx after "$(job_field "$q" output)" && fail "job $q's output came with hecd down"
start_daemon node0 "$HECD"
"$HEC" wait --timeout 120 "$q"
reason=$(job_field "$q" reason)
echo "job $q: $(job_state "$q"): $reason"
case $reason in *"exit code 5"*) ;; *) fail "job $q's reason is '$reason', not its exit code 5" ;; esac
out_has "$q" after

note "a guest whose QEMU dies while hecd is down fails its job with the reason"
cat >lost.sh <<'EOS'
#!/bin/sh
#HEC -N 1 -n 1 -t 5:00 --partition vm --vcpus 1
echo up; sleep 300
EOS
k=$(submit lost.sh)
wait_state "$k" RUNNING 180
out_has "$k" up
qpid=$(qemu_of "$k")
[ -n "$qpid" ] || fail "no QEMU process for job $k"
kill -9 "$(daemon_pid node0)"
kill -9 "$qpid"
sleep 1
start_daemon node0 "$HECD"
"$HEC" wait --timeout 60 "$k"
state=$(job_state "$k")
reason=$(job_field "$k" reason)
echo "job $k: $state: $reason"
[ "$state" = FAILED ] || fail "job $k is $state after its QEMU died with hecd"
grep -q 'node0: .*QEMU' <<<"$reason" || fail "job $k's reason '$reason' does not name its lost QEMU"
for i in $(seq 100); do [ -z "$(qemu_of "$k")" ] && break; sleep 0.2; done
[ -z "$(qemu_of "$k")" ] || fail "QEMU of job $k left running: $(qemu_of "$k")"

note "a job of two guests: both nodes' hecd restart, the guests talk over the job network after"
"$HEC" cluster down >/dev/null || fail "cluster down failed"
cluster_up 2 --node-timeout 60s
# (hec-rsh retried: the restarts may outlast the sleep)
cat >two.sh <<'EOS'
#!/bin/sh
#HEC -N 2 -n 2 -t 5:00 --partition vm --vcpus 1
echo up
sleep 20
for i in $(seq 60); do hec-rsh node1 'echo rsh-from-$(hostname)' && break; sleep 1; done
exit 4
EOS
m=$(submit two.sh)
wait_state "$m" RUNNING 180
out_has "$m" up
restart_hecd KILL node1
restart_hecd KILL node0
"$HEC" show "$m" | grep -q 'JobState=RUNNING' ||
	fail "job $m is not RUNNING after its nodes' restarts: $("$HEC" show "$m")"
"$HEC" wait --timeout 180 "$m"
reason=$(job_field "$m" reason)
echo "job $m: $(job_state "$m"): $reason"
case $reason in *"exit code 4"*) ;; *) fail "job $m's reason is '$reason', not its exit code 4" ;; esac
out_has "$m" rsh-from-node1
for i in $(seq 100); do [ -z "$(procs_with "hec-job$m-.*$TEST_DIR/")" ] && break; sleep 0.2; done
[ -z "$(procs_with "hec-job$m-.*$TEST_DIR/")" ] || fail "QEMU of job $m left running"
echo "PASS: $TEST_NAME"
