#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The CLI of other hosts: over TCP (cli_listen), users authenticated by
# MUNGE.  A user submits and waits for a job over TCP, cannot cancel root's
# job there, root can; garbage, misdirected, replayed, expired and missing
# credentials are refused saying why, as is everything when a munged is
# unreachable, and the controller serves on.  Two munged with one key stand
# for a login node's and the controller host's.
. "$HEC_SRCDIR/tests/integration/lib.sh"
id -u nobody >/dev/null 2>&1 || skip "no user 'nobody' to test with"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
# nobody runs copies from the test directory (the build may sit under /root)
cp "$HEC" "$TEST_DIR/hec"
cp "$HEC_BUILDDIR/tests/tools/hec-authprobe" "$TEST_DIR/authprobe"
USER_HEC="$TEST_DIR/hec"
PROBE="$TEST_DIR/authprobe"

. "$HEC_SRCDIR/tests/integration/munge_lib.sh"
test_cleanup() { stop_munged ctl; stop_munged user; }
start_munged ctl
start_munged user

cluster_up 1 --cli-listen 127.0.0.1:0 --munge-socket "$M/ctl.sock"
A=$(cat "$HEC_DIR/state/cli.addr") || fail "no $HEC_DIR/state/cli.addr"
note "controller takes the remote CLI on $A"
# As a user (nobody) and as root of another host would, with no way to the
# Unix socket: user_hec over --controller, root_hec as HEC_CONTROLLER says.
user_hec() {
	(cd /tmp && as_nobody env HEC_DIR=/nonexistent HEC_MUNGE_SOCKET="$M/user.sock" \
		"$USER_HEC" --controller "$A" "$@")
}
root_hec() { env HEC_DIR=/nonexistent HEC_MUNGE_SOCKET="$M/user.sock" HEC_CONTROLLER="$A" "$HEC" "$@"; }
cd "$TEST_DIR"
chmod 777 "$TEST_DIR"

# a user submits over TCP and sees the job complete
out=$(user_hec submit -N 1 -n 1 --output "$TEST_DIR/user.out" -- /bin/sh -c 'id -u' 2>&1) ||
	fail "nobody cannot submit over TCP: $out"
userjob=${out#Submitted job }
[ "$(job_field "$userjob" user)" = nobody ] || fail "job $userjob over TCP is $(job_field "$userjob" user)'s, not nobody's"
user_hec wait "$userjob" ||
	fail "nobody's hec wait over TCP failed (job $userjob: $(job_state "$userjob"))"
st=$(user_hec show "$userjob" --json | jq -r .job.state)
[ "$st" = COMPLETED ] || fail "job $userjob is '$st' over TCP, expected COMPLETED"
grep -qx "$(id -u nobody)" "$TEST_DIR/user.out" || fail "job $userjob did not run as nobody: $(cat "$TEST_DIR/user.out")"

# nobody cannot cancel root's job over TCP; root can (HEC_CONTROLLER this time)
touch "$TEST_DIR/hold"
rootjob=$(submit -N 1 -n 1 -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.1; done")
wait_state "$rootjob" RUNNING
expect_fail 1 "job $rootjob belongs to uid 0; only its owner or root may cancel it" \
	user_hec cancel "$rootjob"
[ "$(job_state "$rootjob")" = RUNNING ] || fail "nobody's cancel over TCP changed root's job to $(job_state "$rootjob")"
root_hec cancel "$rootjob" || fail "root cannot cancel over TCP"
"$HEC" wait "$rootjob"
[ "$(job_state "$rootjob")" = CANCELLED ] || fail "root's cancel over TCP left job $rootjob $(job_state "$rootjob")"

# probe MODE PATTERN [CRED]: a connection answering MODE-wise is refused
# with an error matching PATTERN and closed; the controller serves on
probe() {
	local mode=$1 pat=$2 out; shift 2
	out=$(HEC_MUNGE_SOCKET="$M/user.sock" "$PROBE" "$A" "$mode" "$@" 2>&1)
	note "$mode: $(head -n 1 <<<"$out")"
	grep -q '^AUTH_OK' <<<"$out" && fail "a '$mode' credential was accepted: $out"
	grep -qE "^ERROR .*$pat" <<<"$out" || fail "a '$mode' credential: expected an ERROR /$pat/, got: $out"
	tail -n 1 <<<"$out" | grep -qx CLOSED || fail "a '$mode' credential: the connection stayed open: $out"
	root_hec queue >/dev/null || fail "the controller stopped serving after a '$mode' credential"
}
out=$(HEC_MUNGE_SOCKET="$M/user.sock" "$PROBE" "$A" good) || fail "a good credential: $out"
grep -q '^RESPONSE {"ok":true' <<<"$out" || fail "a good credential was not served: $out"
cred=$(sed -n 's/^CRED //p' <<<"$out")
probe garbage "authentication refused: the credential is invalid"
probe wrong "authentication refused: the credential is not for this connection"
probe replay "authentication refused: the credential was replayed" "$cred"
probe none "authentication required: expected AUTH"
probe expired "authentication refused: the credential has expired"
grep -q "authentication refused" "$HEC_DIR/log/hecctld.log" || fail "the controller's log says nothing of the refusals"

# no munged on the user's side: the CLI says so
expect_fail 1 "cannot reach munged at $M/absent.sock" \
	env HEC_MUNGE_SOCKET="$M/absent.sock" "$HEC" --controller "$A" queue
# none on the controller's: it refuses saying so, and serves on.  munged
# killed leaves its socket, on which libmunge retries a refused connect for
# seconds: after the first refusal the controller tries one connect itself
# and refuses at once ("...: Connection refused", not libmunge's sentence).
stop_munged ctl KILL
expect_fail 1 "controller $A: authentication refused: the controller cannot reach munged at $M/ctl.sock" \
	root_hec queue
t0=$(date +%s%N)
expect_fail 1 "controller $A: authentication refused: the controller cannot reach munged at $M/ctl.sock: Connection refused" \
	root_hec queue
note "refused in $((($(date +%s%N) - t0) / 1000000)) ms once its munged was known down"
pid_alive "$(daemon_pid hecctld)" || fail "the controller died when its munged went away"
"$HEC" queue >/dev/null || fail "the controller stopped serving its Unix socket when its munged went away"
# munged back: users get in again
start_munged ctl
root_hec queue >/dev/null || fail "the remote CLI stays refused after the controller's munged came back"
echo "PASS: $TEST_NAME"
