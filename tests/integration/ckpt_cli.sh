#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Checkpoints and restarts without guests (doc/design.md, "Checkpoint and
# restart"): what the controller refuses and why, the job fields, and the
# catalog's pending rows at a controller start.
# - no storage servers: `hec ckpt` of a vm job says so; a proc job is
#   refused for want of storage, a restart for want of a checkpoint;
#   `hec ckpts --json` of a job without checkpoints is empty;
#   another user may list but not delete; restart of a job that never ran,
#   or has no checkpoint, is refused with the reason.
# - with 2 storage servers: a vm job that has not run is refused; a checkpoint committed on the servers
#   (hec-store commit --meta) whose row was left pending when the
#   controller died is listed committed after its restart, with the sizes,
#   nodes and pauses of its manifest; a pending row whose epoch was never
#   committed is aborted (its chunks go, the committed one's stay as they
#   were) and named as the last failure;
#   `hec ckpt --delete` removes a checkpoint from the servers and the list.
# hec-test-timeout: 300
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v jq >/dev/null || skip "jq not installed"
command -v sqlite3 >/dev/null || skip "sqlite3 not installed (Debian package sqlite3)"
id -u nobody >/dev/null 2>&1 || skip "no user 'nobody' to test with"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"
HEC_STORE="$HEC_BUILDDIR/hec-store"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
USER_HEC="$TEST_DIR/hec"
cp "$HEC" "$USER_HEC"
chmod 755 "$USER_HEC"
W="$TEST_DIR/work"
mkdir -p "$W"
cd "$TEST_DIR"

ckpts_json() { "$HEC" ckpts "$1" --json; }

cluster_up 2
touch hold
note "a proc job without storage servers: no checkpoints, no restarts"
p=$(submit -N 2 -n 2 -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.1; done")
wait_state "$p" RUNNING
expect_fail 1 "no storage server has registered" "$HEC" ckpt "$p"
expect_fail 1 "job $p has no committed checkpoint" "$HEC" restart "$p"
[ "$(ckpts_json "$p" | jq -c .ckpts)" = "[]" ] || fail "ckpts of job $p: $(ckpts_json "$p")"
ckpts_json "$p" | jq -e 'has("current") or has("last_error") | not' >/dev/null ||
	fail "ckpts of job $p names a checkpoint: $(ckpts_json "$p")"
"$HEC" ckpts "$p" | grep -qx "job $p has no committed checkpoint" || fail "hec ckpts $p: $("$HEC" ckpts "$p")"
expect_fail 2 "which job" "$HEC" ckpt
expect_fail 2 "only for --delete" "$HEC" ckpt "$p" 12
expect_fail 2 "which checkpoint" "$HEC" ckpt --delete "$p"
expect_fail 2 "not a node list" "$HEC" restart "$p" --nodes 'node[2-1]'

note "a vm job waiting behind it, without storage servers"
v=$(submit -N 2 -n 2 --partition vm --ckpt-interval 60 --ckpt-keep 3 --restart auto --max-restarts 5 -- /bin/true)
sleep 0.3
[ "$(job_state "$v")" = PENDING ] || fail "vm job $v is $(job_state "$v"), expected PENDING behind job $p"
expect_fail 1 "no storage server has registered" "$HEC" ckpt "$v"
"$HEC" show "$v" --json | jq -e '.job | .ckpt_interval == 60 and .ckpt_keep == 3 and .restart == "auto" and
	.max_restarts == 5 and .ckpt_epoch == 0 and .restarts == []' >/dev/null ||
	fail "job $v's checkpoint fields: $("$HEC" show "$v" --json)"
"$HEC" show "$v" | grep -q "CkptInterval=60s CkptKeep=3 NewestCkpt=0 Restart=auto MaxRestarts=5" ||
	fail "hec show $v: $("$HEC" show "$v")"
expect_fail 1 "job $v has not started yet" "$HEC" restart "$v"
expect_fail 1 "job $v has no checkpoint 123" "$HEC" ckpt --delete "$v" 123
note "another user may list a job's checkpoints, not delete them"
out=$(cd /tmp && as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" ckpts "$v" --json) ||
	fail "nobody cannot list job $v's checkpoints: $out"
expect_fail 1 "belongs to uid 0; only its owner or root may delete its checkpoints" \
	as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" ckpt --delete "$v" 123
expect_fail 1 "belongs to uid 0; only its owner or root may checkpoint it" \
	as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" ckpt "$v"
expect_fail 1 "belongs to uid 0; only its owner or root may restart it" \
	as_nobody env HEC_DIR="$HEC_DIR" "$USER_HEC" restart "$v"
"$HEC" cancel "$v" || fail "cancel $v"
wait_state "$v" CANCELLED
expect_fail 1 "job $v has no committed checkpoint" "$HEC" restart "$v"
rm hold
"$HEC" wait "$p" || fail "job $p: $(job_state "$p")"
"$HEC" cluster down >/dev/null || fail "cluster down"

note "a new cluster with 2 storage servers; a vm job that ended before it ran"
cluster_up 2 --storage 2
wait_store s0 up 15
wait_store s1 up 15
touch hold
p=$(submit -N 2 -n 2 -- /bin/sh -c "while [ -e $TEST_DIR/hold ]; do sleep 0.1; done")
wait_state "$p" RUNNING
v=$(submit -N 2 -n 2 --partition vm -- /bin/true)
sleep 0.3
[ "$(job_state "$v")" = PENDING ] || fail "vm job $v is $(job_state "$v"), expected PENDING behind job $p"
expect_fail 1 "job $v is not running \(PENDING" "$HEC" ckpt "$v"
"$HEC" cancel "$v" || fail "cancel $v"
wait_state "$v" CANCELLED
rm hold
"$HEC" wait "$p" || fail "job $p: $(job_state "$p")"
expect_fail 1 "job $v has ended \(CANCELLED\)" "$HEC" ckpt "$v"
E1=1765000000000001
E2=1765000000000002
cat >"$W/meta.json" <<EOF
{"job":{"name":"true","user":"root","uid":0,"nnodes":2,"ntasks":2,"vcpus":1,"mem_mb":512,
 "vm_files":["/bin/true"],"command":"/bin/true"},"nodes":["node0","node1"],
 "parts":[{"part":"p0","node":"node0","image":"img0","pause_us":4100},
          {"part":"p1","node":"node1","image":"img0","pause_us":3900}]}
EOF
for part in p0 p1; do
	head -c $((1 << 20)) /dev/urandom >"$W/$part"
	"$HEC_STORE" --quiet put "$v" "$E1" "$part" <"$W/$part" >"$W/$part.json" || fail "put $v/$E1/$part failed"
done
"$HEC_STORE" --quiet put "$v" "$E2" p0 <"$W/p0" >/dev/null || fail "put $v/$E2/p0 failed"
note "a meta that does not fit the streams is refused; one that does is committed"
jq '.parts[1].part = "p7"' "$W/meta.json" >"$W/bad.json"
expect_fail 1 "meta: part p7 has no stream" "$HEC_STORE" commit --meta "$W/bad.json" "$v" "$E1" "$W/p0.json" "$W/p1.json"
"$HEC_STORE" --quiet commit --meta "$W/meta.json" "$v" "$E1" "$W/p0.json" "$W/p1.json" ||
	fail "commit --meta $v/$E1 failed"
"$HEC_STORE" --json latest "$v" | jq -e ".epoch == $E1 and .meta.parts[0].pause_us == 4100" >/dev/null ||
	fail "the manifest of $v/$E1 lacks its meta: $("$HEC_STORE" --json latest "$v")"

note "the controller dies with both rows pending; its successor sorts them out"
kill -9 "$(daemon_pid hecctld)"
sleep 0.3
sqlite3 "$HEC_DIR/state/hec.db" "INSERT INTO ckpts (job, epoch, state, t_ns, created) VALUES
	($v, $E1, 'pending', ${E1}000, 1765000000), ($v, $E2, 'pending', ${E2}000, 1765000000)" ||
	fail "cannot write the catalog"
start_daemon hecctld "$HECCTLD"
for i in $(seq 300); do
	[ "$(sqlite3 "$HEC_DIR/state/hec.db" "SELECT COUNT(*) FROM ckpts WHERE state='pending'" 2>/dev/null)" = 0 ] && break
	sleep 0.1
done
[ "$(sqlite3 "$HEC_DIR/state/hec.db" "SELECT COUNT(*) FROM ckpts WHERE state='pending'")" = 0 ] ||
	fail "pending rows left 30 s after the start: $(sqlite3 "$HEC_DIR/state/hec.db" "SELECT * FROM ckpts")"
c=$(ckpts_json "$v")
echo "$c" | jq -c .
echo "$c" | jq -e ".ckpts | length == 1" >/dev/null || fail "job $v: not one checkpoint: $c"
echo "$c" | jq -e ".ckpts[0] | .epoch == $E1 and .bytes == $((2 << 20)) and .nodes == [\"node0\",\"node1\"]
	and .parts[1].node == \"node1\" and .parts[1].pause_us == 3900 and .parts[0].bytes == $((1 << 20))" >/dev/null ||
	fail "the committed checkpoint's figures: $c"
echo "$c" | jq -e ".last_error.epoch == $E2" >/dev/null || fail "the aborted checkpoint is not the last failure: $c"
for s in s0 s1; do
	[ -d "$HEC_DIR/store/$s/data/objects/$v/$E2" ] && [ -n "$(ls -A "$HEC_DIR/store/$s/data/objects/$v/$E2")" ] &&
		fail "$s still holds chunks of the aborted $v/$E2: $(ls "$HEC_DIR/store/$s/data/objects/$v/$E2")"
done
# the abort of $E2 left the earlier committed $E1 as it was, byte for byte
"$HEC_STORE" --quiet get "$v" "$E1" p0 | cmp -s - "$W/p0" || fail "$v/$E1/p0 changed after the abort of $E2"
"$HEC" ckpts "$v" | grep -qE "^$E1 +[0-9T:-]+ +2\.0 MB +committed .*node0 4\.1 ms, node1 3\.9 ms$" ||
	fail "hec ckpts $v: $("$HEC" ckpts "$v")"
"$HEC" ckpts "$v" | grep -q "^last failure: .* checkpoint $E2: the controller restarted during the checkpoint$" ||
	fail "hec ckpts $v: no last failure line: $("$HEC" ckpts "$v")"
[ "$(job_field "$v" ckpt_epoch)" = "$E1" ] || fail "hec show $v: ckpt_epoch $(job_field "$v" ckpt_epoch)"

note "restart's arguments are checked"
expect_fail 1 "job $v has no committed checkpoint 999" "$HEC" restart "$v" --epoch 999
expect_fail 1 "--nodes names 1 node; job $v needs 2" "$HEC" restart "$v" --nodes node0
expect_fail 1 "--nodes: no node node9 in the cluster" "$HEC" restart "$v" --nodes node9,node0

note "hec ckpt --delete: gone from the servers and the list"
"$HEC" ckpt --delete "$v" "$E1" || fail "ckpt --delete $v $E1 failed"
[ "$(ckpts_json "$v" | jq -c .ckpts)" = "[]" ] || fail "deleted checkpoint still listed: $(ckpts_json "$v")"
"$HEC_STORE" --quiet latest "$v" 2>/dev/null && fail "hec-store still finds a checkpoint of $v"
expect_fail 1 "job $v has no checkpoint $E1" "$HEC" ckpt --delete "$v" "$E1"
echo "PASS: $TEST_NAME"
