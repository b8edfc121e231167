#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A returning storage server is repaired by the controller (doc/storage.md,
# "Repair"): cluster with 3 servers; epoch 1 committed with r=2; s1 killed
# (-9); epoch 2 committed with r=3 while it is down (every chunk degraded:
# 2 copies); s1 restarted: the controller runs hec-store repair by itself,
# `hec storage` shows it done with the copies made and nothing lost, and
# every chunk of both epochs has its copies where the manifest says.  Then
# `hec storage repair` on demand reports the chunks of an epoch whose only
# copies were removed as lost, and refuses a user who is not root.
# hec-test-timeout: 300
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || skip "jq not installed"
HEC_STORE="$HEC_BUILDDIR/hec-store"
W="$TEST_DIR/work"
mkdir -p "$W"

repair_json() { "$HEC" storage --json | jq -c .repair; }
# check_copies JOB EPOCH R: every chunk of the committed stream node0 has R
# copies, and the chunk files are exactly where the manifest (s0's) says.
check_copies() {
	local job=$1 epoch=$2 r=$3 m n idx on files k
	m="$HEC_DIR/store/s0/data/objects/$job/$epoch/MANIFEST"
	[ -f "$m" ] || fail "s0 has no manifest of $job/$epoch"
	n=$(jq '.streams[0].chunks | length' "$m")
	for idx in $(seq 0 $((n - 1))); do
		on=$(jq -r ".streams[0].chunks[$idx].on[]" "$m" | sort | tr '\n' ' ')
		[ "$(jq -r ".streams[0].chunks[$idx].on[]" "$m" | sort -u | wc -l)" = "$r" ] ||
			fail "$job/$epoch chunk $idx: on '$on', expected $r servers"
		files=$(for k in 0 1 2; do
			[ -f "$HEC_DIR/store/s$k/data/objects/$job/$epoch/node0.$idx" ] && echo "s$k"
		done | tr '\n' ' ')
		[ "$files" = "$on" ] || fail "$job/$epoch chunk $idx: files on '$files', the manifest says '$on'"
	done
}

cluster_up 1 --storage 3
head -c $((4 << 20)) /dev/urandom >"$W/a"
"$HEC_STORE" --quiet --replicas 2 --chunk-size 1M put 7 1 node0 <"$W/a" >"$W/e1.json" || fail "put 7/1 failed"
"$HEC_STORE" --quiet commit 7 1 "$W/e1.json" || fail "commit 7/1 failed"
[ "$(repair_json | jq -r .state)" = none ] || fail "a repair before any server returned: $(repair_json)"
"$HEC" storage | grep -q '^repair:' && fail "hec storage shows a repair that never ran: $("$HEC" storage)"

note "kill -9 s1; epoch 2 with r=3 on the two left (degraded)"
kill -9 "$(daemon_pid s1)"
wait_store s1 down 10
wait_store s0 up 15
wait_store s2 up 15
"$HEC_STORE" --replicas 3 --chunk-size 1M put 7 2 node0 <"$W/a" >"$W/e2.json" 2>"$W/put2.err" ||
	fail "put 7/2 failed: $(cat "$W/put2.err")"
grep -q "4 chunks x 3 copies (4 degraded)" "$W/put2.err" || fail "put 7/2 not degraded: $(cat "$W/put2.err")"
"$HEC_STORE" --quiet --replicas 3 commit 7 2 "$W/e2.json" || fail "commit 7/2 failed"
[ "$(repair_json | jq -r .state)" = none ] || fail "a repair while s1 is down: $(repair_json)"

note "s1 restarted: the controller repairs"
start_store s1
wait_store s1 up 15
for i in $(seq 600); do
	st=$(repair_json | jq -r .state)
	[ "$st" = done ] || [ "$st" = failed ] && break
	sleep 0.1
done
r=$(repair_json)
note "repair: $r"
[ "$(jq -r .state <<<"$r")" = done ] || fail "repair did not end well: $r"
[ "$(jq -r .reason <<<"$r")" = "storage server s1 registered again" ] || fail "repair's reason: $r"
[ "$(jq .copied <<<"$r")" = 4 ] || fail "repair copied $(jq .copied <<<"$r") chunks, expected the 4 degraded ones"
[ "$(jq -c '[.lost, .removed, (.lost_chunks | length)]' <<<"$r")" = "[0,0,0]" ] || fail "repair lost or removed: $r"
jq -e '.error == null and .started > 0 and .ended >= .started' <<<"$r" >/dev/null || fail "repair's times or error: $r"
"$HEC" storage | grep -qE '^repair: done .* in [0-9]+ s \(storage server s1 registered again\): 4 copies made, 0 chunks lost, 0 deleted copies removed$' ||
	fail "hec storage's repair line: $("$HEC" storage)"
grep -q "storage repair (storage server s1 registered again): 4 copies made, 0 chunks lost" "$HEC_DIR/log/hecctld.log" ||
	fail "the controller logged no repair outcome"
check_copies 7 1 2
check_copies 7 2 3
"$HEC_STORE" --quiet get 7 2 node0 | cmp - "$W/a" || fail "get 7/2 after the repair differs"

note "hec storage repair: chunks with no copy left are reported lost"
head -c $((2 << 20)) "$W/a" | "$HEC_STORE" --quiet --replicas 1 --chunk-size 1M put 7 3 node0 >"$W/e3.json" ||
	fail "put 7/3 failed"
"$HEC_STORE" --quiet commit 7 3 "$W/e3.json" || fail "commit 7/3 failed"
rm -f "$HEC_DIR"/store/s*/data/objects/7/3/node0.*
# (on a loaded machine a server may miss its STATUS and be declared down
# for a moment: the repair would then leave it out)
for s in s0 s1 s2; do wait_store $s up 15; done
out=$("$HEC" storage repair 2>&1) && fail "hec storage repair succeeded with 2 chunks lost: $out"
note "$out"
grep -qE '^repair: failed .* \(asked by uid 0\): repair: 2 chunks lost' <<<"$out" || fail "storage repair's line: $out"
grep -qx 'repair: lost 2 chunks of job 7 epoch 3' <<<"$out" || fail "storage repair names no lost chunks: $out"
[ "$(repair_json | jq -c '[.lost, .lost_chunks[0].job, .lost_chunks[0].epoch, .lost_chunks[0].chunks]')" = "[2,7,3,2]" ] ||
	fail "storage --json after the lost chunks: $(repair_json)"
"$HEC" storage | grep -qx 'repair: lost 2 chunks of job 7 epoch 3' || fail "hec storage does not show the lost chunks"
"$HEC_STORE" --quiet delete 7 3 || fail "delete 7/3 failed"
"$HEC" storage repair --json >"$W/rep.json" || fail "hec storage repair after the delete failed: $(cat "$W/rep.json")"
[ "$(jq -c '.repair | [.state, .copied, .lost]' "$W/rep.json")" = '["done",0,0]' ] ||
	fail "hec storage repair --json: $(cat "$W/rep.json")"

if id -u nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	expect_fail 1 "only root may repair the checkpoint storage" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$HEC" storage repair
fi
note "PASS"
