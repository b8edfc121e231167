#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Local requests are authenticated by the socket's peer credentials: a user
# may cancel only their own jobs; root may cancel any; only root changes the
# gang settings or takes the cluster down; jobs run as their user.
. "$HEC_SRCDIR/tests/integration/lib.sh"
id -u nobody >/dev/null 2>&1 || skip "no user 'nobody' to test with"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
# The build tree may sit where nobody cannot reach (a clone under /root):
# nobody runs a copy of the CLI from the test directory.
cp "$HEC" "$TEST_DIR/hec"
USER_HEC="$TEST_DIR/hec"
as_nobody test -x "$USER_HEC" || fail "user nobody cannot run $USER_HEC"

# A job runs with its user's groups (initgroups, as SLURM's): a group of
# this test's own, nobody its member, must be among the job's groups.
grp=hect$$
test_cleanup() { groupdel "$grp" 2>/dev/null; }
command -v groupadd >/dev/null || skip "groupadd (passwd) missing: the test makes a group for nobody"
for g in $(getent group | sed -n 's/^\(hect[0-9]*\):.*/\1/p'); do groupdel "$g" 2>/dev/null; done
groupadd -U nobody "$grp" || fail "groupadd -U nobody $grp failed"
gid=$(getent group "$grp" | cut -d: -f3)

cluster_up 2
cd "$TEST_DIR"
touch "$TEST_DIR/hold"
chmod 777 "$TEST_DIR"
rootjob=$(submit -N 1 -n 1 -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.1; done")
out=$(cd /tmp && as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" submit -N 1 -n 1 -- /bin/sh -c "id -u; echo groups \$(id -G); while [ -e $TEST_DIR/hold ]; do sleep 0.1; done") ||
	fail "nobody cannot submit: $out"
userjob=${out#Submitted job }
wait_state "$rootjob" RUNNING
wait_state "$userjob" RUNNING
[ "$(job_field "$userjob" user)" = nobody ] || fail "job $userjob user is $(job_field "$userjob" user)"

expect_fail 1 "owner|root|permi" as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" cancel "$rootjob"
[ "$(job_state "$rootjob")" = RUNNING ] || fail "nobody's cancel changed root's job to $(job_state "$rootjob")"
expect_fail 1 "root" as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" cluster down
kill -0 "$(daemon_pid hecctld)" || fail "nobody shut the controller down"
slot=$("$HEC" gang --json | jq '.gang.slot_ns')
expect_fail 1 "root" as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" gang set --slot 10
[ "$("$HEC" gang --json | jq '.gang.slot_ns')" = "$slot" ] || fail "nobody changed the gang slot"
as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" cancel "$userjob" || fail "nobody cannot cancel its own job"
"$HEC" wait "$userjob"
[ "$(job_state "$userjob")" = CANCELLED ] || fail "job $userjob is $(job_state "$userjob")"
grep -qx "$(id -u nobody)" <<<"$("$HEC" logs "$userjob")" || fail "nobody's job did not run as nobody"
# a job's output is its user's (and root's) alone: created 0600, and `hec
# logs` of another user's job is refused
m=$(stat -c '%U %a' "$(job_field "$userjob" output)")
[ "$m" = "nobody 600" ] || fail "nobody's output file is '$m', not 'nobody 600'"
expect_fail 1 "job $rootjob is root's: its output is theirs and root's alone" \
	as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" logs "$rootjob"
groups=$("$HEC" logs "$userjob" | sed -n 's/^groups //p')
grep -qw "$gid" <<<"$groups" || fail "nobody's job runs in groups '$groups', without its group $grp ($gid)"
grep -qw 0 <<<"$groups" && fail "nobody's job runs in root's group 0: '$groups'"
# One user cannot hold the controller's descriptors: nobody's connections
# past 64 are refused saying so, and root still gets in.
cp "$HEC_BUILDDIR/tests/tools/hec-sendraw" "$TEST_DIR/sendraw"
for i in $(seq 72); do
	: | as_nobody "$TEST_DIR/sendraw" "unix:$HEC_DIR/hecctld.sock" --wait 6000 >"$TEST_DIR/conn.$i" 2>&1 &
done
sleep 2
"$HEC" queue >/dev/null || fail "root's hec queue failed while nobody held 72 connections"
wait
refused=$(grep -l "uid $(id -u nobody) has 64 connections open to the controller, the most a user may" "$TEST_DIR"/conn.* | wc -l)
echo "nobody's 72 connections: $refused refused"
[ "$refused" -ge 8 ] || fail "only $refused of nobody's 72 connections were refused (64 may stay open): $(cat "$TEST_DIR/conn.72")"
as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" queue >/dev/null || fail "nobody cannot use hec once its connections closed"

# root may cancel anyone's job; here its own
"$HEC" cancel "$rootjob" || fail "root cannot cancel"
"$HEC" wait "$rootjob"
[ "$(job_state "$rootjob")" = CANCELLED ] || fail "job $rootjob is $(job_state "$rootjob")"

# The spool is root's, each user's output in a directory of its own: nobody
# cannot prepare the name of root's next output file (as a symbolic link to
# a secret or as a file of its own, which once made root's job fail).
sp="$HEC_DIR/spool"
[ "$(stat -c '%U %a' "$sp")" = "root 755" ] || fail "the spool is '$(stat -c '%U %a' "$sp")', not 'root 755'"
[ "$(stat -c '%U %a' "$sp/0")" = "root 700" ] || fail "root's spool directory is '$(stat -c '%U %a' "$sp/0")'"
nob=$(id -u nobody)
[ "$(stat -c '%U %a' "$sp/$nob")" = "nobody 700" ] || fail "nobody's spool directory is '$(stat -c '%U %a' "$sp/$nob")'"
[ "$(job_field "$userjob" output)" = "$sp/$nob/job-$userjob.out" ] || fail "nobody's output is $(job_field "$userjob" output)"
next=$(( (rootjob > userjob ? rootjob : userjob) + 1 ))
echo secret >"$TEST_DIR/secret"
chmod 600 "$TEST_DIR/secret"
as_nobody ln -s "$TEST_DIR/secret" "$sp/job-$next.out" 2>/dev/null && fail "nobody can write the spool"
as_nobody ln -s "$TEST_DIR/secret" "$sp/0/job-$next.out" 2>/dev/null && fail "nobody can write root's spool directory"
as_nobody mkdir "$sp/12345" 2>/dev/null && fail "nobody can make another user's spool directory"
j=$(submit -N 1 -n 1 -- /bin/echo root-output)
[ "$j" = "$next" ] || fail "expected job id $next, got $j"
"$HEC" wait "$j" || fail "root's job $j failed: $(job_field "$j" reason)"
[ "$(cat "$TEST_DIR/secret")" = secret ] || fail "the secret was overwritten through the spool"
[ "$(stat -c '%U %a' "$sp/0/job-$j.out")" = "root 600" ] || fail "root's output is '$(stat -c '%U %a' "$sp/0/job-$j.out")'"
grep -q root-output "$sp/0/job-$j.out" || fail "root's output is not in $sp/0/job-$j.out"
as_nobody cat "$sp/0/job-$j.out" >/dev/null 2>&1 && fail "nobody reads root's output"

# A path the user gives may be in a shared directory: a symbolic link or a
# file another user made there is still refused (and the job says why).
shared="$TEST_DIR/shared"
mkdir -m 1777 "$shared"
next=$((j + 1))
as_nobody ln -s "$TEST_DIR/secret" "$shared/out.$next"
j=$(submit -N 1 -n 1 -o "$shared/out.%j" -- /bin/echo root-output)
[ "$j" = "$next" ] || fail "expected job id $next, got $j"
"$HEC" wait "$j" && fail "job $j wrote through nobody's symbolic link"
[ "$(cat "$TEST_DIR/secret")" = secret ] || fail "the secret was overwritten through a shared directory"
[ "$(job_state "$j")" = FAILED ] || fail "job $j is $(job_state "$j"), expected FAILED"
# (refused by O_NOFOLLOW, or first by the kernel's fs.protected_symlinks)
job_field "$j" reason | grep -qE "out.$next: (Too many levels of symbolic links|Permission denied)" ||
	fail "job $j failed for another reason: '$(job_field "$j" reason)'"
next=$((j + 1))
as_nobody sh -c "umask 0; : > '$shared/out.$next'"
j=$(submit -N 1 -n 1 -o "$shared/out.%j" -- /bin/echo root-output)
[ "$j" = "$next" ] || fail "expected job id $next, got $j"
"$HEC" wait "$j" && fail "job $j wrote into a file nobody owns"
[ "$(job_state "$j")" = FAILED ] || fail "job $j is $(job_state "$j"), expected FAILED"
# (refused by hec's owner check, or first by the kernel's fs.protected_regular)
job_field "$j" reason | grep -qE "out.$next: (Operation not permitted|Permission denied)" ||
	fail "job $j failed for another reason: '$(job_field "$j" reason)'"
grep -q root-output "$shared/out.$next" && fail "root's output landed in nobody's file"
echo "PASS: $TEST_NAME"
