#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# libhecckpt on its own (include/hec/hecckpt.h), under real MPICH mpiexec
# with real parallel HDF5, no cluster (tests/mpi/hecckpt_prog.c):
# - standalone (HEC_CKPT_DIR only): 2 and 4 ranks write ckpt-1.h5 and
#   ckpt-2.h5 of nine arrays of every supported type and per-rank counts;
#   h5ls/h5dump read them (datasets, sizes, attributes job, epoch, ranks,
#   format, counts, xxh3, mpi_type); a second run restores every value of
#   either epoch, and its next checkpoint numbers on;
# - bad restores fail on every rank with the same sentence and leave the
#   arrays untouched: a flipped byte (checksum, naming array and rank), a
#   truncated file, a missing one, an HDF5 file that is not a checkpoint,
#   another rank count, another count, an extra, a missing or a retyped
#   array, HEC_CKPT_EPOCH not the file's;
# - checkpoints refused: names, order, number or types differing between
#   ranks (-EINVAL, no file left), an unwritable directory (-EIO);
# - the local contracts (names, types, unprotect, init twice, -ENOTSUP
#   without HEC_CKPT_DIR, need 0);
# - the agent protocol against a scripted fake agent: requests seen by
#   need, begin/written/taken, a checkpoint of the program's own, restored
#   and restore_failed, and every failure (no answer, closed socket,
#   garbage, refusals, cancel) as a clear error, never a hang;
# - the need() cost helper runs.
# hec-test-timeout: 900
set -u
: "${HEC_BUILDDIR:?run through make check (HEC_BUILDDIR unset)}"
TEST_NAME=hecckpt_lib
PROG="$HEC_BUILDDIR/tests/mpi/hecckpt_prog"
AGENT="$HEC_BUILDDIR/tests/tools/hec-fakeagent"
NEEDB="$HEC_BUILDDIR/bench/hecckpt-need"
W=$(mktemp -d /tmp/hecckpt-test.XXXXXX)
trap 'rm -rf "$W"' EXIT
# (in a subshell, a pipeline's part or a $(...), it ends the test too)
HEC_TEST_SHELL=$BASHPID
fail() { echo "FAIL: $TEST_NAME: $*" >&2; [ "$BASHPID" = "$HEC_TEST_SHELL" ] || kill -USR2 "$HEC_TEST_SHELL" 2>/dev/null; exit 1; }
trap 'exit 1' USR2
note() { echo "-- $*"; }
skip() { echo "SKIP: $TEST_NAME: $*"; exit 77; }
command -v mpiexec >/dev/null || skip "mpiexec missing (Debian package mpich)"
command -v h5dump >/dev/null || skip "h5dump missing (Debian package hdf5-tools)"
for f in "$PROG" "$AGENT" "$NEEDB"; do [ -x "$f" ] || fail "$f not built"; done
unset HEC_CKPT_DIR HEC_CKPT_SOCK HEC_CKPT_RESTORE HEC_CKPT_EPOCH HEC_CKPT_TIMEOUT HEC_JOB_ID

# run N ARGS...: the program on N ranks, bounded; its output in $W/out
run() {
	local n=$1
	shift
	timeout 120 mpiexec -n "$n" "$PROG" "$@" >"$W/out" 2>&1
}
ok_run() { run "$@" || { cat "$W/out"; fail "hecckpt_prog $* failed"; }; cat "$W/out"; }
# bad_restore N FILE ERR VARIANT SENTENCE: restore fails with ERR and SENTENCE
bad_restore() {
	HEC_CKPT_RESTORE=$2 run "$1" fail "$3" "$4" || { cat "$W/out"; fail "restore of $2 ($4) did not fail with $3 as expected"; }
	cat "$W/out"
	grep -qF -- "$5" "$W/out" || fail "restore of $2 ($4): no '$5' in the sentence"
	grep -q "ok: the arrays are untouched" "$W/out" || fail "restore of $2 ($4): arrays touched"
}
attr() { # FILE OBJECT ATTR: the attribute's values, one line
	h5dump -a "$2/$3" "$1" | sed -n '/DATA {/,/}/p' | grep -v 'DATA {\|}' | sed 's/^ *([0-9]*)://' | tr -d ' \n'
}

for n in 2 4; do
	note "$n ranks, standalone: two checkpoints"
	D="$W/d$n"
	mkdir -m 700 "$D"
	HEC_CKPT_DIR=$D HEC_JOB_ID=42 ok_run "$n" write 2
	[ -f "$D/ckpt-1.h5" ] && [ -f "$D/ckpt-2.h5" ] || fail "no ckpt-1.h5 and ckpt-2.h5 in $D: $(ls "$D")"
	ls "$D" | grep -q tmp && fail "a .tmp file is left in $D"
	h5ls -r "$D/ckpt-2.h5" >"$W/ls" || fail "h5ls cannot read ckpt-2.h5"
	cat "$W/ls"
	# the sums of every rank's count
	t=0 i=0 b=0 f=0
	for ((r = 0; r < n; r++)); do
		t=$((t + 1000 + 37 * r)) i=$((i + 50 * (r + 1))) f=$((f + 17 + r))
		[ $r = 1 ] || b=$((b + 300))
	done
	for ds in "iter $n" "temp $t" "ids $i" "mask $((33 * n))" "blob $b" "l $((20 * n))" \
		"big $((10 * n))" "f $f"; do
		set -- $ds
		grep -qE "^/$1 +Dataset \{$2\}$" "$W/ls" || fail "no /$1 of $2 elements in ckpt-2.h5"
	done
	[ "$(grep -c Dataset "$W/ls")" = 9 ] || fail "ckpt-2.h5 does not hold exactly nine datasets"
	[ "$(attr "$D/ckpt-2.h5" "" epoch)" = 2 ] || fail "epoch attribute: $(attr "$D/ckpt-2.h5" "" epoch)"
	[ "$(attr "$D/ckpt-1.h5" "" epoch)" = 1 ] || fail "ckpt-1.h5's epoch attribute"
	[ "$(attr "$D/ckpt-2.h5" "" ranks)" = "$n" ] || fail "ranks attribute"
	[ "$(attr "$D/ckpt-2.h5" "" job)" = 42 ] || fail "job attribute (HEC_JOB_ID 42)"
	[ "$(attr "$D/ckpt-2.h5" "" format)" = '"hecckpt1"' ] || fail "format attribute"
	want=$(for ((r = 0; r < n; r++)); do printf '%s,' $((1000 + 37 * r)); done)
	[ "$(attr "$D/ckpt-2.h5" /temp counts)" = "${want%,}" ] || fail "/temp counts: $(attr "$D/ckpt-2.h5" /temp counts)"
	[ "$(attr "$D/ckpt-2.h5" /blob counts)" = "300,0$(for ((r = 2; r < n; r++)); do printf ',300'; done)" ] ||
		fail "/blob counts: $(attr "$D/ckpt-2.h5" /blob counts)"
	[ "$(attr "$D/ckpt-2.h5" /f mpi_type)" = '"MPI_FLOAT"' ] || fail "/f mpi_type"
	[ "$(attr "$D/ckpt-2.h5" /big mpi_type)" = '"MPI_UNSIGNED_LONG_LONG"' ] || fail "/big mpi_type"
	h5dump -d /temp -H "$D/ckpt-2.h5" | grep -q H5T_IEEE_F64LE || fail "/temp is not stored as doubles"
	x=$(attr "$D/ckpt-2.h5" /temp xxh3)
	[ "$(echo "$x" | tr ',' '\n' | grep -cE '^[0-9]+$')" = "$n" ] || fail "/temp xxh3: $x"
	[ "$x" != "$(attr "$D/ckpt-1.h5" /temp xxh3)" ] || fail "/temp's xxh3 is the same for other values"
	h5dump -d /iter "$D/ckpt-2.h5" | grep -qE '\(0\): 2(, 2)+$' || fail "/iter does not hold 2 for every rank"

	note "$n ranks: restore epoch 2, then 1; the next checkpoint numbers on"
	mkdir -m 700 "$D/next"
	HEC_CKPT_RESTORE=$D/ckpt-2.h5 HEC_CKPT_DIR=$D/next ok_run "$n" read 2
	[ -f "$D/next/ckpt-3.h5" ] || fail "the checkpoint after restoring epoch 2 is not ckpt-3.h5"
	HEC_CKPT_RESTORE=$D/ckpt-1.h5 HEC_CKPT_EPOCH=1 ok_run "$n" read 1
done

F=$W/d2/ckpt-2.h5
note "a flipped byte in rank 1's part of /temp: checksum mismatch"
off=$(h5dump -p -H -d /temp "$F" | sed -n 's/^ *OFFSET \([0-9]*\)$/\1/p')
[ -n "$off" ] || fail "no OFFSET of /temp in h5dump -p"
cp "$F" "$W/flip.h5"
pos=$((off + (1000 + 5) * 8 + 3))
old=$(od -An -tu1 -j "$pos" -N1 "$W/flip.h5" | tr -d ' ')
printf "\\$(printf %03o $((old ^ 0xff)))" | dd of="$W/flip.h5" bs=1 seek="$pos" conv=notrunc status=none
cmp -s "$F" "$W/flip.h5" && fail "the flip changed nothing"
bad_restore 2 "$W/flip.h5" EIO same "array 'temp' of rank 1: checksum mismatch"

note "a truncated file, a missing one, an HDF5 file that is no checkpoint"
head -c $(($(stat -c %s "$F") / 2)) "$F" >"$W/half.h5"
bad_restore 2 "$W/half.h5" EIO same "is not a readable HDF5 file"
bad_restore 2 "$W/nothing.h5" ENOENT same "nothing.h5: No such file or directory"
h5copy -i "$F" -o "$W/other.h5" -s /temp -d /temp || fail "h5copy failed"
bad_restore 2 "$W/other.h5" EIO same "is not a hecckpt checkpoint"

note "another rank count, another count, other arrays, another epoch"
bad_restore 2 "$W/d4/ckpt-1.h5" EINVAL same \
	"checkpoint 1 was written by 4 ranks, this run has 2: restarts need the same number of ranks"
bad_restore 4 "$F" EINVAL same "checkpoint 2 was written by 2 ranks, this run has 4"
bad_restore 2 "$F" EMSGSIZE count "array 'temp': rank 1 protects 1038 elements, checkpoint 2 holds 1037 for it"
bad_restore 2 "$F" EINVAL extra "checkpoint 2 has no array 'more'"
bad_restore 2 "$F" EINVAL missing "checkpoint 2 holds array 'f', which this run does not protect"
bad_restore 2 "$F" EINVAL type "array 'f' is MPI_FLOAT in checkpoint 2, this run protects it as MPI_DOUBLE"
HEC_CKPT_EPOCH=5 bad_restore 2 "$F" EINVAL same "holds epoch 2, HEC_CKPT_EPOCH says 5"

note "names, order, number or types differing between ranks: -EINVAL, no file"
mkdir -m 700 "$W/names"
for v in renamed:"rank 1 protects 'idz' (MPI_INT), rank 0 'ids'" order:"rank 1 protects 'mask'" \
	fewer:"rank 1 protects 8 arrays, rank 0 9" type:"rank 1 protects 'f' (MPI_INT), rank 0 'f' (MPI_FLOAT)"; do
	HEC_CKPT_DIR=$W/names run 2 names "${v%%:*}" || { cat "$W/out"; fail "names ${v%%:*}"; }
	cat "$W/out"
	grep -qF "${v#*:}" "$W/out" || fail "names ${v%%:*}: no '${v#*:}'"
done
[ -z "$(ls -A "$W/names")" ] || fail "refused checkpoints left files: $(ls "$W/names")"

note "an unwritable HEC_CKPT_DIR: -EIO naming the file"
HEC_CKPT_DIR=$W/absent run 2 wfail EIO || { cat "$W/out"; fail "wfail"; }
cat "$W/out"
grep -qF "$W/absent/ckpt-1.h5.tmp: cannot create" "$W/out" || fail "the sentence does not name the file"

note "the local contracts, outside hec and standalone"
ok_run 2 api
HEC_CKPT_DIR=$W/names ok_run 1 api
HEC_CKPT_SOCK=$W/sock run 2 api && fail "HEC_CKPT_SOCK without HEC_CKPT_DIR accepted"
grep -q "HEC_CKPT_SOCK is set but HEC_CKPT_DIR is not" "$W/out" || { cat "$W/out"; fail "no sentence for a socket without a directory"; }

# agent N SCENARIO EXPECT [ENV...]: the program against the fake agent
agent() {
	local n=$1 sc=$2 ex=$3
	shift 3
	rm -rf "$W/alog" "$W/a"
	mkdir -m 700 "$W/a"
	"$AGENT" "$W/asock" "$sc" "$W/alog" &
	apid=$!
	for _ in $(seq 100); do [ -S "$W/asock" ] && break; sleep 0.05; done
	env HEC_CKPT_DIR="$W/a" HEC_CKPT_SOCK="$W/asock" HEC_CKPT_TIMEOUT=2 HEC_JOB_ID=5 "$@" \
		timeout 120 mpiexec -n "$n" "$PROG" agent "$ex" >"$W/out" 2>&1
	rc=$?
	wait $apid || fail "fake agent ($sc) failed"
	cat "$W/out"
	echo "agent saw:"
	cat "$W/alog" 2>/dev/null
	[ $rc = 0 ] || fail "agent scenario $sc: the program did not get $ex"
}
note "agent: a request seen by need, checkpoint 7 written and taken, restored reported"
agent 2 ok 7 HEC_CKPT_RESTORE="$F" HEC_CKPT_EPOCH=2
grep -qx '{"op":"hello","job":5,"ranks":2}' "$W/alog" || fail "no hello with job and ranks"
grep -qx '{"op":"restored","epoch":2}' "$W/alog" || fail "no restored"
grep -qx '{"op":"begin","epoch":7}' "$W/alog" || fail "no begin 7"
grep -qxF "{\"op\":\"written\",\"epoch\":7,\"path\":\"$W/a/ckpt-7.h5\",\"bytes\":$(stat -c %s "$W/a/ckpt-7.h5")}" "$W/alog" ||
	fail "no written 7 with the file's path and size"
[ "$(attr "$W/a/ckpt-7.h5" "" epoch)" = 7 ] && [ "$(attr "$W/a/ckpt-7.h5" "" job)" = 5 ] || fail "ckpt-7.h5's attributes"
note "agent: a checkpoint of the program's own (begin 0, epoch 9)"
agent 4 own +9
grep -qx '{"op":"begin","epoch":0}' "$W/alog" || fail "no begin 0"
[ -f "$W/a/ckpt-9.h5" ] || fail "no ckpt-9.h5"
note "agent: a failed restore is reported"
rm -f "$W/alog"
"$AGENT" "$W/asock" own "$W/alog" &
apid=$!
for _ in $(seq 100); do [ -S "$W/asock" ] && break; sleep 0.05; done
HEC_CKPT_DIR="$W/a" HEC_CKPT_SOCK="$W/asock" HEC_CKPT_EPOCH=2 bad_restore 2 "$W/flip.h5" EIO same "checksum mismatch"
wait $apid
grep -q '{"op":"restore_failed","epoch":2,"error":"checkpoint 2: array .temp. of rank 1: checksum mismatch' "$W/alog" ||
	{ cat "$W/alog"; fail "no restore_failed with the sentence"; }
note "agent: refusals and broken agents are clear errors, never hangs"
agent 2 refuse EIO
grep -q "the hec agent refused checkpoint 7 (written): disk full" "$W/out" || fail "refuse: no sentence"
[ -z "$(ls -A "$W/a")" ] || fail "refuse: the refused file is left: $(ls "$W/a")"
agent 2 cancel ECANCELED
grep -q "hec cancelled checkpoint 7" "$W/out" || fail "cancel: no sentence"
[ -z "$(ls -A "$W/a")" ] || fail "cancel: the refused file is left: $(ls "$W/a")"
agent 2 silent ETIMEDOUT
grep -q "the hec agent did not answer hello within 2 s" "$W/out" || fail "silent: no sentence"
agent 2 close EPIPE
grep -q "the hec agent closed the checkpoint socket" "$W/out" || fail "close: no sentence"
agent 2 garbage EPROTO
grep -q "broke the checkpoint protocol: not a JSON object with an op: this is not json" "$W/out" || fail "garbage: no sentence"
agent 2 deny EPROTO
grep -q "the hec agent refused hello: job 5 is not running here" "$W/out" || fail "deny: no sentence"

note "need()'s cost helper"
timeout 120 mpiexec -n 2 "$NEEDB" 100000 >"$W/out" 2>&1 || { cat "$W/out"; fail "hecckpt-need failed"; }
cat "$W/out"
grep -qE '^need: 100000 calls, 2 ranks, [0-9.]+ ns per call \(outside hec\)$' "$W/out" || fail "hecckpt-need's output"
echo "PASS: $TEST_NAME"
