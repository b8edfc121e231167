#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# One VM under QEMU TCG: hec-guest boots as /init, says HELLO on the channel
# and runs commands for hec-guestctl: output, exit codes, a missing program,
# a signal, stdin, user/cwd, PING, and MPI inside the guest.
. "${HEC_SRCDIR:-$(pwd)}/tests/vm/lib.sh"
vm_checks
vm_image --add "$B/tests/mpi/mpi_check"
t0=$(date +%s%N)
vm_start vm0 0 vm0:10.77.0.1 "user,id=n0,restrict=on"
S=$VM_DIR/vm0.sock
C="timeout 300 $GUESTCTL --timeout 90 $S"

hello=$($C hello) || fail "no HELLO from the guest"
t1=$(date +%s%N)
echo "HELLO after $(((t1 - t0) / 1000000)) ms:"
echo "$hello"
echo "$hello" | grep -qx 'node=vm0' || fail "HELLO has no node=vm0"
echo "$hello" | grep -q '^kernel=' || fail "HELLO has no kernel="

# stdout and stderr kept apart, the exit code passed through
rc=0
$C run -- /bin/sh -c 'echo out; echo err >&2; exit 3' >"$VM_DIR/out" 2>"$VM_DIR/err" </dev/null || rc=$?
[ "$rc" = 3 ] || fail "exit 3 came back as $rc"
[ "$(cat "$VM_DIR/out")" = out ] || fail "stdout: $(cat "$VM_DIR/out")"
[ "$(cat "$VM_DIR/err")" = err ] || fail "stderr: $(cat "$VM_DIR/err")"

# the program found in PATH; hostname and /etc/hosts from the command line
out=$($C run -- hostname </dev/null) || fail "hostname failed"
[ "$out" = vm0 ] || fail "hostname is '$out'"
$C run -- grep -q '^10.77.0.1[[:space:]]*vm0$' /etc/hosts </dev/null || fail "/etc/hosts lacks vm0"

# a missing program: 127 and the reason
rc=0
$C run -- /no/such/program </dev/null 2>"$VM_DIR/err" || rc=$?
[ "$rc" = 127 ] || fail "a missing program gave $rc, not 127"
grep -q 'execve /no/such/program: No such file or directory' "$VM_DIR/err" ||
	fail "no reason for the missing program: $(cat "$VM_DIR/err")"
rc=0
$C run -- no-such-command-in-path </dev/null 2>/dev/null || rc=$?
[ "$rc" = 127 ] || fail "a program not in PATH gave $rc, not 127"

# killed by a signal: 128+signal
rc=0
$C run -- /bin/sh -c 'kill -TERM $$' </dev/null || rc=$?
[ "$rc" = 143 ] || fail "SIGTERM gave $rc, not 143"

# stdin relayed, and its end
out=$(printf 'one\ntwo\n' | $C run -- wc -l) || fail "wc -l failed"
[ "$(echo $out)" = 2 ] || fail "stdin: wc -l said '$out'"

# a user, and a working directory that does not exist yet
out=$($C run --uid 1000 --gid 1000 --cwd /home/u1000/job/dir -- /bin/sh -c 'pwd; id -u; id -g; touch x' </dev/null) ||
	fail "run as 1000 failed"
[ "$(echo $out)" = "/home/u1000/job/dir 1000 1000" ] || fail "uid/cwd: '$out'"

# the environment: the RUN's own, then the image defaults
out=$($C run --env FOO=bar -- /bin/sh -c 'echo $FOO $HYDRA_LAUNCHER $UCX_TLS' </dev/null)
[ "$out" = "bar rsh tcp,self,sm" ] || fail "environment: '$out'"

# the remote-shell service refuses a wrong key
rc=0
$C run --env HEC_RSH_KEY=wrong -- hec-rsh vm0 true </dev/null 2>"$VM_DIR/err" || rc=$?
[ "$rc" = 127 ] || fail "a wrong key gave $rc"
grep -q 'wrong job key' "$VM_DIR/err" || fail "no 'wrong job key': $(cat "$VM_DIR/err")"
out=$($C run -- hec-rsh vm0 'echo via; echo rsh' </dev/null) || fail "hec-rsh to itself failed"
[ "$(echo $out)" = "via rsh" ] || fail "hec-rsh: '$out'"
# stdin through both hops (channel, then the remote shell), and an exit code back
rc=0
out=$(printf 'a\nb\nc\n' | $C run -- hec-rsh vm0 'wc -l; exit 5') || rc=$?
[ "$(echo $out)" = 3 ] && [ "$rc" = 5 ] || fail "hec-rsh stdin/exit: '$out' rc $rc"

$C ping | grep -q '^pong' || fail "no PONG"

# what a command leaves behind ends with it, even in a session of its own
# (gone at once, or within a minute under TCG on a loaded machine)
$C run -- /bin/sh -c 'setsid sleep 1000 >/dev/null 2>&1 & exit 0' </dev/null || fail "background run failed"
out=$($C run -- /bin/sh -c 'i=0; while ps -o args | grep -q "^sleep 1000" && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	ps -o args | grep "^sleep 1000" || echo "none after $i waits"' </dev/null)
echo "a RUN's leftover: $out"
case $out in "none after "*) ;; *) fail "a process outlived its RUN by a minute: $out" ;; esac

# MPI inside one guest (shared memory: /dev/shm)
# (two ranks of one job, not two singletons: the rank lines, and the sum
# the test expects: 2 ranks x 20 rounds, (1 + 2) x (1 + ... + 20))
out=$($C run -- mpiexec -n 2 "$B/tests/mpi/mpi_check" 20 </dev/null) || fail "mpi_check failed: $out"
echo "$out"
[ "$(echo "$out" | grep -c '^rank [01] size 2 ')" = 2 ] || fail "mpi_check: not ranks 0 and 1 of 2: $out"
echo "$out" | grep -qx 'result sum=630 expected=630 OK' || fail "mpi_check: $out"
echo "guest_boot: OK"
