#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Coordinated checkpoint and restart of a vm job (doc/design.md, "Checkpoint
# and restart"), state then verify, with a deterministic MPI program whose
# final checksum depends only on its arguments and rank count:
# - the reference checksum comes from an uninterrupted run (cgroup
#   partitions: the same program, ranks and arguments);
# - a 2-node vm job of it (--restart auto) is checkpointed twice while its
#   ranks exchange messages (`hec ckpt --wait`), both listed committed with
#   both guests' pauses;
# - one guest's QEMU is killed with SIGKILL: the job restarts by itself from
#   the newest checkpoint and ends COMPLETED with the reference checksum;
#   `hec show` lists the restart;
# - the first checkpoint exported to an HDF5 file (h5ls reads it), deleted,
#   imported back (`hec ckpt import`) and the job restarted by hand from it
#   on two other nodes gives the same checksum;
# - checkpoints are the owner's: another user may list them, not take or
#   delete them.  (A corrupted checkpoint and retention: vm_ckpt.sh.)
# hec-test-timeout: 1200
. "$HEC_SRCDIR/tests/integration/lib.sh"

need_guests
PROG="$HEC_BUILDDIR/tests/mpi/ckpt_prog"
[ -x "$PROG" ] || fail "$PROG missing (make check builds it)"
ITER=240
SLEEP=150

cluster_up 4 --storage 2
cd "$TEST_DIR"

# checksum ID: the last checksum line the job printed
checksum() { "$HEC" logs "$1" | sed -n 's/^checksum \([0-9a-f]*\) .*/\1/p' | tail -n 1; }
# last_iter ID: the highest "iter N" printed so far
last_iter() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^iter //p' | sort -n | tail -n 1; }
wait_iter() {
	local i
	for i in $(seq 1 1200); do
		[ "$(last_iter "$1")" -ge "$2" ] 2>/dev/null && return 0
		case $(job_state "$1") in RUNNING | PENDING) ;; *) fail "job $1 is $(job_state "$1") before iteration $2: $("$HEC" logs "$1" | tail -3)" ;; esac
		sleep 0.25
	done
	fail "job $1 did not reach iteration $2 (last: $(last_iter "$1"))"
}
# ckpt ID: take a checkpoint, print its epoch
ckpt() {
	local e
	e=$("$HEC" ckpt --wait "$1" 2>"$TEST_DIR/ckpt.err") || fail "hec ckpt --wait $1: $(cat "$TEST_DIR/ckpt.err")"
	[[ $e =~ ^[0-9]+$ ]] || fail "hec ckpt --wait $1 printed '$e'"
	echo "$e"
}
# sums ID: how many checksum lines the job has printed (one per run that ended)
sums() { "$HEC" logs "$1" | grep -c '^checksum ' || true; }
# qemu_of ID NODE: the QEMU of job ID's guest on NODE (this cluster's only)
qemu_of() { procs_with "hec-job$1-$2 .*$TEST_DIR/" | head -n 1; }

note "reference: the program uninterrupted, 2 ranks in cgroup partitions"
ref=$(submit -N 2 -n 2 -t 5:00 -- "$PROG" "$ITER" 0)
"$HEC" wait "$ref" || fail "reference job $ref: $(job_state "$ref")"
want=$(checksum "$ref")
[ -n "$want" ] || fail "the reference run printed no checksum: $("$HEC" logs "$ref" | tail -3)"
echo "reference checksum $want"

note "bad requests are refused with the reason"
expect_fail 1 'has ended \(COMPLETED\)' "$HEC" ckpt "$ref"
expect_fail 1 'no such job' "$HEC" ckpt 99999
[ "$("$HEC" ckpts "$ref" --json | jq '.ckpts | length')" = 0 ] || fail "a job never checkpointed lists checkpoints"

note "a 2-node vm job, checkpointed twice while it runs"
j=$(submit -N 2 -n 2 -t 20:00 --partition vm --vcpus 1 --mem 256M --restart auto --ckpt-keep 3 -- "$PROG" "$ITER" "$SLEEP")
wait_iter "$j" 20
e1=$(ckpt "$j")
[ -n "$e1" ] || fail "hec ckpt printed no epoch"
wait_iter "$j" $(($(last_iter "$j") + 10))
e2=$(ckpt "$j")
[ -n "$e2" ] && [ "$e2" -gt "$e1" ] || fail "second checkpoint's epoch '$e2' is not after $e1"
"$HEC" ckpts "$j"
js=$("$HEC" ckpts "$j" --json)
[ "$(jq '.ckpts | length' <<<"$js")" = 2 ] || fail "hec ckpts lists $(jq '.ckpts | length' <<<"$js") checkpoints, expected 2"
[ "$(jq -r '[.ckpts[].epoch] | join(" ")' <<<"$js")" = "$e1 $e2" ] || fail "epochs listed: $(jq -c '[.ckpts[].epoch]' <<<"$js")"
[ "$(jq '[.ckpts[-1].parts[] | select(.bytes > 0 and .pause_us >= 0)] | length' <<<"$js")" = 2 ] ||
	fail "the newest checkpoint does not list two parts with sizes and pauses: $(jq -c '.ckpts[-1]' <<<"$js")"
echo "per-guest pauses (us): $(jq -c '[.ckpts[].parts[].pause_us]' <<<"$js")"
[ "$(job_state "$j")" = RUNNING ] || fail "job $j is $(job_state "$j") after its checkpoints"

note "a guest's QEMU killed: the job restarts from epoch $e2 by itself"
at=$(last_iter "$j")
qpid=$(qemu_of "$j" node1)
[ -n "$qpid" ] || fail "no QEMU of job $j on node1"
kill -9 "$qpid"
for i in $(seq 1 600); do
	[ "$("$HEC" show "$j" --json | jq '.job.restarts | length')" -ge 1 ] && break
	sleep 0.5
done
"$HEC" show "$j" --json | jq -c '.job.restarts'
[ "$("$HEC" show "$j" --json | jq -r '.job.restarts[0].epoch')" = "$e2" ] || fail "the restart did not use epoch $e2"
"$HEC" show "$j" | grep -q "Restart.*$e2" || fail "hec show does not list the restart from $e2"
"$HEC" wait "$j" || fail "restarted job $j: $(job_state "$j") ($(job_field "$j" reason)); $("$HEC" logs "$j" | tail -5)"
[ "$(sums "$j")" = 1 ] || fail "job $j printed $(sums "$j") checksum lines after one restart"
got=$(checksum "$j")
echo "killed at iteration $at; after the restart: checksum $got"
[ "$got" = "$want" ] || fail "checksum after the restart $got, uninterrupted $want"

note "checkpoint $e1 exported to HDF5, deleted, imported, and restarted from on two other nodes"
"$HEC" ckpt export "$j" "$e1" ck.h5 >/dev/null || fail "hec ckpt export $j $e1 failed"
h5ls -r ck.h5 | grep -qE '^/parts/p0/stream +Dataset' || fail "the exported file has no /parts/p0/stream: $(h5ls -r ck.h5)"
h5ls -r ck.h5 | grep -qE '^/parts/p1/stream +Dataset' || fail "the exported file has no /parts/p1/stream"
h5dump -a /ntasks ck.h5 | grep -q '(0): 2' || fail "the exported file's job spec has no ntasks 2: $(h5dump -a /ntasks ck.h5)"
h5dump -a /parts/p1/node ck.h5 | grep -q '"node' || fail "/parts/p1 has no node attribute"
expect_fail 1 'no committed checkpoint' "$HEC" ckpt export "$j" 12345 x.h5
"$HEC" ckpt --delete "$j" "$e1" || fail "deleting checkpoint $e1 failed"
[ "$("$HEC" ckpts "$j" --json | jq "[.ckpts[] | select(.epoch == $e1)] | length")" = 0 ] || fail "epoch $e1 still listed after delete"
e3=$("$HEC" ckpt import ck.h5) || fail "hec ckpt import failed"
[[ $e3 =~ ^[0-9]+$ ]] && [ "$e3" -gt "$e2" ] || fail "hec ckpt import printed '$e3'"
old=$("$HEC" show "$j" --json | jq -r '.job.nodelist | join(" ")')
pair=$(for n in node0 node1 node2 node3; do grep -qw "$n" <<<"$old" || echo "$n"; done | paste -sd, -)
[ "$(tr ',' '\n' <<<"$pair" | wc -l)" = 2 ] || fail "no two nodes outside $old: '$pair'"
before=$(sums "$j")
out=$("$HEC" restart "$j" --epoch "$e3" --nodes "$pair" 2>&1) || fail "hec restart $j --epoch $e3 --nodes $pair: $out"
"$HEC" wait "$j" || fail "job $j restarted on $pair: $(job_state "$j") ($(job_field "$j" reason))"
ran=$("$HEC" show "$j" --json | jq -r '.job.nodelist | sort | join(",")')
[ "$ran" = "$pair" ] || fail "job $j ran on $ran, not $pair (it ran on $old before)"
[ "$(sums "$j")" = $((before + 1)) ] || fail "the run on $pair printed no checksum of its own"
[ "$(checksum "$j")" = "$want" ] || fail "checksum after a restart on $pair: $(checksum "$j"), want $want"
echo "from the imported checkpoint $e3 (was $e1) on $pair: checksum $(checksum "$j")"

note "checkpoints are the owner's: another user may list but not take or delete them"
if id -u nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	# nobody runs a copy of the CLI from the test directory (the build tree may be out of reach)
	cp "$HEC" "$TEST_DIR/hec-nobody" && chmod 755 "$TEST_DIR" "$TEST_DIR/hec-nobody"
	as_nobody() { (cd /tmp && setpriv --reuid=nobody --regid=nogroup --clear-groups -- env HEC_DIR="$HEC_DIR" "$TEST_DIR/hec-nobody" "$@"); }
	expect_fail 1 'owned by|only' as_nobody ckpt "$j"
	expect_fail 1 'owned by|only' as_nobody ckpt --delete "$j" "$e3"
	expect_fail 1 'owned by|only' as_nobody ckpt export "$j" "$e3" /tmp/x.h5
	expect_fail 1 'owned by|only' as_nobody ckpt import "$TEST_DIR/ck.h5" --job "$j"
	as_nobody ckpts "$j" --json | jq -e ".ckpts | length >= 1" >/dev/null || fail "another user cannot list job $j's checkpoints"
fi
expect_fail 1 'no (such )?checkpoint|not committed|no committed' "$HEC" ckpt --delete "$j" 12345
note "job $j: checkpointed, killed, restarted automatically, exported, imported and restarted on other nodes: checksum $want every time"
