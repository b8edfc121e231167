#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad CLI arguments, config values and wire messages: a one-line error and a
# non-zero exit; the daemons keep running and keep working.
. "$HEC_SRCDIR/tests/integration/lib.sh"
SENDRAW="$HEC_BUILDDIR/tests/tools/hec-sendraw"

# CLI arguments (no cluster needed to refuse them)
expect_fail 2 "nodes" "$HEC" submit -N 0 -- /bin/true
expect_fail 2 "nodes.*abc|abc.*nodes" "$HEC" submit -N abc -- /bin/true
expect_fail 2 "time" "$HEC" submit -t 1:99 -- /bin/true
expect_fail 2 "priority" "$HEC" submit --priority lots -- /bin/true
expect_fail 2 "frobnicate" "$HEC" frobnicate
expect_fail 2 "unrecognized|unknown|invalid" "$HEC" submit --bogus -- /bin/true
expect_fail 2 "program|command|script" "$HEC" submit -N 1
expect_fail 2 "nodes" "$HEC" cluster up --nodes 0
expect_fail 2 "--vm-switch: 'kvm': expected auto, cgroup or qmp" "$HEC" cluster up --nodes 1 --vm-switch kvm
expect_fail 2 "--vm-hugepages: 'yes': expected off, auto or on" "$HEC" cluster up --nodes 1 --vm-hugepages yes
expect_fail 2 "job" "$HEC" show abc
expect_fail 2 "ckpt: job ID: 'abc' is not a number" "$HEC" ckpt abc
expect_fail 2 "ckpt: job ID: must be between" "$HEC" ckpt --wait 0
expect_fail 2 "ckpt: unknown option --bogus" "$HEC" ckpt --bogus 1
expect_fail 2 "restart: which job" "$HEC" restart
expect_fail 2 "restart: job ID: 'abc' is not a number" "$HEC" restart abc
expect_fail 2 "restart: unexpected argument '2'" "$HEC" restart 1 2
expect_fail 1 "no cluster" "$HEC" queue

# Config files
printf 'cluster_name = x\nnode_timeout = soon\n' > "$TEST_DIR/bad1.conf"
expect_fail 2 "bad1.conf:2: node_timeout" "$HECCTLD" -f "$TEST_DIR/bad1.conf"
printf 'colour = red\n' > "$TEST_DIR/bad2.conf"
expect_fail 2 "bad2.conf:1: unknown key 'colour'" "$HECCTLD" -f "$TEST_DIR/bad2.conf"
expect_fail 2 "bad2.conf:1: unknown key 'colour'" "$HECD" -f "$TEST_DIR/bad2.conf"
printf 'name = n0\ncontroller = nowhere\n' > "$TEST_DIR/bad3.conf"
expect_fail 2 "controller" "$HECD" -f "$TEST_DIR/bad3.conf"
printf 'name = n0\ncontroller = localhost:1\nvm_switch = fast\n' > "$TEST_DIR/bad4.conf"
expect_fail 2 "vm_switch 'fast': expected auto, cgroup or qmp" "$HECD" -f "$TEST_DIR/bad4.conf"
printf 'name = n0\ncontroller = localhost:1\nvm_hugepages = 1G\n' > "$TEST_DIR/bad4h.conf"
expect_fail 2 "vm_hugepages '1G': expected off, auto or on" "$HECD" -f "$TEST_DIR/bad4h.conf"
expect_fail 2 "nonexistent" "$HECCTLD" -f "$TEST_DIR/nonexistent.conf"
printf 'name = n0\ncontroller = localhost:1\nkey_file =\ncpus = 0\n' > "$TEST_DIR/bad5.conf"
expect_fail 2 "gang_cpu 'x1': not a CPU number" timeout 10 "$HECD" -f "$TEST_DIR/bad5.conf" -o gang_cpu=x1
expect_fail 2 "gang_cpu 0 is one of the node's cpus \(0\)" timeout 10 "$HECD" -f "$TEST_DIR/bad5.conf" -o gang_cpu=0
expect_fail 2 "gang_cpu 1000: not a CPU this hecd may run on" timeout 10 "$HECD" -f "$TEST_DIR/bad5.conf" -o gang_cpu=1000

cluster_up 2
ctl_pid=$(daemon_pid hecctld)
n0_pid=$(daemon_pid node0)
sock="$HEC_DIR/hecctld.sock"
ctl_addr=$(cat "$HEC_DIR/state/ctl.addr")
n0_port=$(ss -Htlnp | awk -v p="pid=$n0_pid," '$0 ~ p { n = split($4, a, ":"); print a[n]; exit }')
[ -n "$n0_port" ] || fail "cannot find node0's spawn port"

# expect_reply ENDPOINT PATTERN : stdin goes to ENDPOINT, the reply must match
expect_reply() {
	local out
	out=$("$SENDRAW" "$1" --wait 3000) || fail "hec-sendraw $1 failed"
	grep -qE -- "$2" <<<"$out" || fail "$1: reply '$out', expected /$2/"
}
frame() { "$SENDRAW" --frame "$@"; }

for ep in "unix:$sock" "tcp:$ctl_addr" "tcp:127.0.0.1:$n0_port"; do
	printf 'GET / HTTP/1.0\r\n\r\n' | expect_reply "$ep" 'ERROR .*bad magic'
	printf 'HC\x07\x02\x00\x00\x00\x02{}' | expect_reply "$ep" 'ERROR .*version 7'
	printf 'HC\x01\xee\x00\x00\x00\x02{}' | expect_reply "$ep" 'ERROR .*unknown message type 238'
	printf 'HC\x01\x02\x7f\xff\xff\xff' | expect_reply "$ep" 'ERROR .*exceeds'
	printf 'HC\x01\x0c\x00\x00\x00\x05{"a":' | expect_reply "$ep" 'ERROR .*invalid JSON'
	frame 18 '{"job":"x"}' | expect_reply "$ep" "ERROR .*field 'job' must be an integer"
	head -c 100000 /dev/urandom | "$SENDRAW" "$ep" --wait 1000 >/dev/null
done
# A TCP peer that has not registered may send no frame over 256 KiB: a
# stranger cannot make the controller buffer megabytes (a node's REGISTER,
# then anything it sends, still can).
printf 'HC\x01\x0a\x00\x10\x00\x00{"node":' |
	expect_reply "tcp:$ctl_addr" 'ERROR .*a message of 1048576 bytes exceeds the 262144 this connection may send'
printf 'HC\x01\x1e\x00\x10\x00\x00{"job":' |
	expect_reply "tcp:127.0.0.1:$n0_port" 'ERROR .*a message of 1048576 bytes exceeds the 65536'
# A flood of bad frames is refused frame by frame, but logged at most 20
# lines per 10 s: 100 of them add no more than 20 lines to the log.
log="$HEC_DIR/log/hecctld.log"
before=$(grep -c "bad message" "$log")
for i in $(seq 100); do
	out=$(printf 'GET / HTTP/1.0\r\n\r\n' | "$SENDRAW" "tcp:$ctl_addr" --wait 2000) || fail "hec-sendraw failed at bad frame $i"
	grep -q 'ERROR .*bad magic' <<<"$out" || fail "bad frame $i: reply '$out'"
done
added=$(($(grep -c "bad message" "$log") - before))
echo "100 bad frames: $added log lines"
[ "$added" -le 20 ] || fail "100 bad frames logged $added lines (at most 20 per 10 s)"
# Well-formed but semantically wrong requests get a RESPONSE with the reason.
frame 2 '{"op":"show","job":424242}' | expect_reply "unix:$sock" 'RESPONSE .*"ok":false.*no such job'
frame 2 '{"op":"submit","nodes":1,"ntasks":1,"time_limit":0,"name":"x","priority":0,"cwd":"/","env":[]}' |
	expect_reply "unix:$sock" "ERROR .*exactly one of 'argv' and 'script'"
frame 2 '{"op":"restart","job":1,"nodes":"node0"}' | expect_reply "unix:$sock" "ERROR .*field 'nodes'"
frame 62 '{"job":1,"epoch":1,"part":"p0","bytes":-1}' | expect_reply "tcp:$ctl_addr" "ERROR .*field 'bytes' is out of range"
frame 12 '{"rtt_ns":-5}' | expect_reply "tcp:$ctl_addr" "ERROR .*field 'rtt_ns' is out of range"
frame 12 '{"rtt_ns":"100ms"}' | expect_reply "tcp:$ctl_addr" "ERROR .*field 'rtt_ns' must be an integer"
frame 10 '{"node":"n","key":"k","hostname":"h","addr":"127.0.0.1:1","cpus":"0","topology":{"cores":1,"pus":1,"numa_nodes":1,"memory_mb":1},"partitions":[],"exits":[],"pid":1,"rtt_ns":-1}' |
	expect_reply "tcp:$ctl_addr" "ERROR .*field 'rtt_ns' is out of range"
# (45 and 46 are retired message types)
printf 'HC\x01\x2e\x00\x00\x00\x02{}' | expect_reply "tcp:$ctl_addr" 'ERROR .*unknown message type 46'
expect_fail 1 "ckpt 424242: no such job 424242" "$HEC" ckpt 424242
expect_fail 1 "no such job 424242" "$HEC" restart 424242
# ranks: at most 64 per CPU of the job's nodes, not a million on one
expect_fail 1 "job asks for 1048576 tasks on 1 node; at most 64 per CPU of its nodes" "$HEC" submit -N 1 -n 1048576 -- /bin/true
# An agent without the cluster key is refused; a bridge with a wrong job key too.
frame 10 '{"node":"intruder","key":"wrong","hostname":"h","addr":"127.0.0.1:1","cpus":"0","topology":{"cores":1,"pus":1,"numa_nodes":1,"memory_mb":1},"partitions":[],"exits":[],"pid":1}' |
	expect_reply "tcp:$ctl_addr" 'ERROR .*key'
out=$("$HEC" nodes) || fail "hec nodes failed: $out"
grep -q node0 <<<"$out" || fail "'hec nodes' does not list node0: $out"
grep -q intruder <<<"$out" && fail "an agent with a wrong key was registered: $out"
# (against a running job, so that only the key check can refuse it)
pwned="$TEST_DIR/pwned"
touch "$TEST_DIR/hold"
run=$(cd "$TEST_DIR" && submit -N 2 -n 2 -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.1; done")
wait_state "$run" RUNNING
frame 30 "{\"job\":$run,\"key\":\"nope\",\"node\":\"node0\",\"cmd\":\"touch $pwned\"}" |
	expect_reply "tcp:127.0.0.1:$n0_port" 'ERROR .*key'
frame 30 "{\"job\":$run,\"key\":\"nope\",\"node\":\"node1\",\"cmd\":\"touch $pwned\"}" |
	expect_reply "tcp:127.0.0.1:$n0_port" 'ERROR'
[ ! -e "$pwned" ] || fail "a SPAWN without a valid job key ran"
rm "$TEST_DIR/hold"
"$HEC" wait "$run" || fail "job $run failed"
# A node name clash with a live agent is refused.
frame 10 "{\"node\":\"node0\",\"key\":\"$(cat "$HEC_DIR/cluster.key")\",\"hostname\":\"h\",\"addr\":\"127.0.0.1:1\",\"cpus\":\"0\",\"topology\":{\"cores\":1,\"pus\":1,\"numa_nodes\":1,\"memory_mb\":1},\"partitions\":[],\"exits\":[],\"pid\":1}" |
	expect_reply "tcp:$ctl_addr" 'ERROR .*node0'

# A connection that never sends a SPAWN does not hold a bridge slot for
# ever: the agent closes it after 5 s (not before; a minute is for ever).
t0=${EPOCHREALTIME/./}
: | timeout 60 "$SENDRAW" "tcp:127.0.0.1:$n0_port" --wait 600000 >/dev/null
rc=$?
ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
[ "$rc" = 0 ] || fail "an idle bridge connection was still open after 60 s"
echo "an idle bridge connection was closed after $ms ms (the agent allows 5000 ms)"
[ "$ms" -ge 4000 ] || fail "an idle bridge connection was closed after $ms ms, before its 5 s"

# A user's string never reaches a terminal raw: a program whose path holds
# terminal escapes (OSC: retitle the window; CSI: clear the screen; the
# 8-bit CSI) is shown escaped by show, queue and the errors (a job name or
# an output path with control characters is refused at submit).
expect_fail 2 "job-name: must not contain control characters" "$HEC" submit -J "$(printf 'e\033]0;x')" -- /bin/true
expect_fail 2 "output: must not contain control characters" "$HEC" submit -o "$TEST_DIR/o$(printf '\033')" -- /bin/true
evil=$(printf '%s/evil\033]0;PWNED\007\033[2J\302\233' "$TEST_DIR")
printf '#!/bin/sh\nexit 0\n' >"$evil" && chmod +x "$evil"
ev=$(submit -o "$TEST_DIR/ev.out" -- "$evil")
"$HEC" wait "$ev" >/dev/null 2>&1
for out in "$("$HEC" show "$ev" 2>&1)" "$("$HEC" queue --all 2>&1)" \
	"$("$HEC" ckpt "$(printf '1\033]0;PWNED\007')" 2>&1)" "$("$HEC" show "$evil" 2>&1)"; do
	if LC_ALL=C grep -q "$(printf '[\033\007\233]')" <<<"$out"; then
		fail "a terminal control byte reached the output: $(od -c <<<"$out" | head -n 20)"
	fi
done
out=$("$HEC" show "$ev")
grep -qF "Command='$TEST_DIR/evil"'\x1b]0;PWNED\x07\x1b[2J\xc2\x9b' <<<"$out" ||
	fail "hec show: the command is not shown escaped: $out"
# nor raw in the daemons' logs (an operator's terminal): C0 controls and DEL become '?'
ctl_bytes=$(printf '[\001-\010\013-\037\177]|\302[\200-\237]')
if LC_ALL=C grep -qE "$ctl_bytes" "$HEC_DIR"/log/*.log; then
	fail "a control byte reached a daemon's log: $(LC_ALL=C grep -nE "$ctl_bytes" "$HEC_DIR"/log/*.log | head -n 3 | od -c | head -n 10)"
fi
grep -qF "evil?]0;PWNED??[2J??" "$HEC_DIR/log/hecctld.log" || fail "the controller's log does not show the command with '?' for its control bytes"

# Nor does a CLI connection that never sends its request hold a descriptor:
# the controller closes it after 10 s (not before).
t0=${EPOCHREALTIME/./}
out=$(: | timeout 60 "$SENDRAW" "unix:$sock" --wait 40000)
ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
echo "an idle CLI connection: closed after $ms ms: $out"
grep -q "ERROR .*no request within 10 s" <<<"$out" || fail "an idle CLI connection was not closed as such: '$out' after $ms ms"
[ "$ms" -ge 9000 ] || fail "an idle CLI connection was closed after $ms ms, before its 10 s"

# Everyone is still alive, and still works.
kill -0 "$ctl_pid" || fail "hecctld died"
kill -0 "$n0_pid" || fail "hecd node0 died"
[ "$(node_state node0)" = IDLE ] || fail "node0 is $(node_state node0) after the abuse"
cd "$TEST_DIR"
id=$(submit -N 2 -n 2 -- "$MPI_CHECK")
"$HEC" wait "$id" || fail "job $id failed after bad input"
echo "PASS: $TEST_NAME"
