#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Application-assisted checkpoints of proc jobs (doc/design.md), the agent's
# socket side spoken by a test client (tests/tools/hec-appclient) in place
# of libhecckpt:
# - hostile lines get a clear {"op":"error"} and the agent runs on: garbage,
#   a message before hello, another job's hello, `written` of an epoch not
#   asked for, a path outside HEC_CKPT_DIR, a symbolic link, another user's
#   file, a line over the bound (that one also closes the connection); a
#   bad file fails the checkpoint asked for (`hec ckpt --wait` says why,
#   the program hears `cancel`);
# - a program that never takes the checkpoint: aborted after the
#   controller's app_ckpt_timeout with the reason, the job runs on;
# - a good file is taken, stored as part "app" of a committed checkpoint,
#   and removed from the directory; a program-initiated one (begin 0) too;
# - --restart auto: the batch step fails after a checkpoint; the job
#   restarts, the agent fetches the file into HEC_CKPT_DIR before the step
#   starts, the step sees HEC_CKPT_RESTORE/HEC_CKPT_EPOCH, the bytes are the
#   ones written, `restored` goes to the controller; exit 0 completes.
# hec-test-timeout: 300
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v jq >/dev/null || skip "jq not installed"
id -u nobody >/dev/null 2>&1 || skip "no user 'nobody' to test with"
CLIENT="$HEC_BUILDDIR/tests/tools/hec-appclient"
cd "$TEST_DIR"

cluster_up 2 --storage 2
wait_store s0 up 15
wait_store s1 up 15
note "the controller again with app_ckpt_timeout = 4s"
ctl_restart_with "app_ckpt_timeout = 4s"

wait_file() { for i in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done; fail "no $1 within 30 s"; }
nodes_up() { for n in node0 node1; do case $(node_state $n) in DOWN|UNKNOWN|"") fail "$n is $(node_state $n): $("$HEC" nodes)";; esac; done; }

head -c 100000 /dev/urandom >data
cat >script <<EOS
send this is not json {{{
expect error
send {"op":"begin","epoch":0}
expect error
send {"op":"hello","job":999999,"ranks":2}
expect error
send {"op":"hello","job":\$J,"ranks":2}
expect hello
send {"op":"written","epoch":5,"path":"\$D/ckpt-5.h5","bytes":1}
expect error
send {"op":"teleport","epoch":5}
expect error
sh touch $TEST_DIR/ready1
expect request
send {"op":"written","epoch":\$E,"path":"/etc/passwd","bytes":1}
expect error
expect cancel
sh touch $TEST_DIR/ready2
expect request
sh ln -s /etc/passwd "\$D/ckpt-\$E.h5"
send {"op":"written","epoch":\$E,"path":"\$D/ckpt-\$E.h5","bytes":1}
expect error
expect cancel
sh test ! -e "\$D/ckpt-\$E.h5" && test ! -L "\$D/ckpt-\$E.h5" && echo "link removed"
sh touch $TEST_DIR/ready3
expect request
sh cp $TEST_DIR/data "\$D/ckpt-\$E.h5" && chown nobody "\$D/ckpt-\$E.h5"
send {"op":"written","epoch":\$E,"path":"\$D/ckpt-\$E.h5","bytes":100000}
expect error
expect cancel
raw 20000
expect error
connect
send {"op":"hello","job":\$J,"ranks":2}
expect hello
sh touch $TEST_DIR/ready4
expect cancel
sh touch $TEST_DIR/ready5
expect request
sh cp $TEST_DIR/data "\$D/ckpt-\$E.h5"
send {"op":"written","epoch":\$E,"path":"\$D/ckpt-\$E.h5","bytes":100000}
expect taken
send {"op":"begin","epoch":0}
expect epoch
sh cp $TEST_DIR/data "\$D/ckpt-\$E.h5"
send {"op":"written","epoch":\$E,"path":"\$D/ckpt-\$E.h5","bytes":100000}
expect taken
sh while [ ! -e $TEST_DIR/done ]; do sleep 0.1; done; ls -A "\$D" | sed 's/^/left: /'
EOS
printf '#!/bin/sh\nexec %s %s\n' "$CLIENT" "$TEST_DIR/script" >run.sh
chmod +x run.sh
j=$(submit -N 2 -n 2 -o "$TEST_DIR/out" "$TEST_DIR/run.sh")
wait_state "$j" RUNNING
wait_file ready1
expect_fail 1 "the file must be .*/ckpt-[0-9]+\.h5, not /etc/passwd" "$HEC" ckpt --wait "$j"
wait_file ready2
expect_fail 1 "a symbolic link \(refused\)" "$HEC" ckpt --wait "$j"
wait_file ready3
expect_fail 1 "belongs to uid $(id -u nobody), not to the job's user" "$HEC" ckpt --wait "$j"
wait_file ready4
note "a program that does not take its checkpoint"
out=$("$HEC" ckpt --wait "$j" 2>&1) && fail "a checkpoint the program never took succeeded: $out"
# (progress lines on stderr while it waits, then the reason)
printf '%s\n' "$out" | tail -1 |
	grep -qE "job $j did not take checkpoint [0-9]+ within 4 s \(does it call hecckpt_need\?\)" ||
	fail "hec ckpt --wait of a checkpoint never taken printed: $out"
[ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") after the aborted checkpoint"
wait_file ready5
e1=$(timeout 60 "$HEC" ckpt --wait "$j") || fail "checkpoint of job $j failed: $e1"
for i in $(seq 300); do
	[ "$("$HEC" ckpts "$j" --json | jq '.ckpts | length')" = 2 ] && break
	sleep 0.1
done
c=$("$HEC" ckpts "$j" --json)
echo "$c" | jq -c .
echo "$c" | jq -e ".ckpts | length == 2 and all(.[]; .bytes == 100000 and .parts[0].part == \"app\" and
	.nodes == [\"node0\"])" >/dev/null || fail "job $j's checkpoints: $c"
echo "$c" | jq -e ".ckpts[] | select(.epoch == $e1)" >/dev/null || fail "checkpoint $e1 is not listed: $c"
touch done
"$HEC" wait "$j" || fail "job $j: $(job_state "$j"): $(cat out)"
cat out
for w in "this is not json" "begin before hello" "not job 999999's" "checkpoint 5 was not asked for" \
	"unknown op 'teleport'" "link removed" "a line longer than 8192 bytes"; do
	grep -q "$w" out || fail "the client's output lacks '$w'"
done
grep -q "^left: " out && fail "files left in HEC_CKPT_DIR after the checkpoints: $(grep '^left' out)"
nodes_up
grep -q "refused: not JSON" "$HEC_DIR/log/hecd-node0.log" 2>/dev/null || grep -rq "refused: not JSON" "$HEC_DIR/log" ||
	fail "the agent's log does not name the refused line"

note "--restart auto: the batch step fails after a checkpoint; the file comes back"
app_ckpt_job "$TEST_DIR/crash"
r=$(submit -N 2 -n 2 --restart auto --max-restarts 2 -o "$TEST_DIR/out2" "$TEST_DIR/job.sh")
wait_file taken
for i in $(seq 300); do
	[ "$("$HEC" ckpts "$r" --json | jq '.ckpts | length')" = 1 ] && break
	sleep 0.1
done
e=$("$HEC" ckpts "$r" --json | jq '.ckpts[0].epoch')
[ "$e" != null ] || fail "job $r has no committed checkpoint: $("$HEC" ckpts "$r" --json)"
touch crash
timeout 120 "$HEC" wait "$r" || fail "job $r: $(job_state "$r"): $("$HEC" show "$r")"
cat out2
grep -q "restore ok from $e" out2 || fail "the restarted step did not get checkpoint $e's bytes: $(cat out2)"
"$HEC" show "$r" --json | jq -e ".job.restarts | length == 1 and .[0].epoch == $e" >/dev/null ||
	fail "job $r's restarts: $("$HEC" show "$r" --json | jq -c .job.restarts)"
grep -rq "the program restored checkpoint $e" "$HEC_DIR/log" || fail "the controller did not hear 'restored'"
nodes_up
"$HEC" cluster down >/dev/null || fail "cluster down"
echo "PASS: $TEST_NAME"
