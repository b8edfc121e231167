#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Deletes that stay deleted (doc/storage.md, "Deleting: tombstones"): three
# standalone hecstored; epochs 1 and 2 of job 5 committed (r=2); s1 stopped;
# epoch 2 deleted (tombstones on s0 and s2); s1 back with its old copy:
# latest is 1, get of 5/2 fails, no put or commit brings 5/2 back; repair
# deletes s1's copy and leaves 5/1 whole.
# hec-test-timeout: 300
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/storage_lib.sh"
command -v jq >/dev/null || skip "jq not installed"

store_start 3
W="$TEST_DIR/work"
mkdir -p "$W"
head -c $((3 << 20 | 777)) /dev/urandom >"$W/a"

for e in 1 2; do
	hs --quiet --replicas 2 --chunk-size 1M put 5 $e node0 <"$W/a" >"$W/e$e.json" ||
		fail "put 5/$e failed"
	hs --quiet commit 5 $e "$W/e$e.json" || fail "commit 5/$e failed"
done
[ "$(hs latest 5)" = 2 ] || fail "latest 5: '$(hs latest 5)', expected 2"
s1_files=$(find "$(store_dir 1)/objects/5/2" -type f | wc -l)
[ "$s1_files" -ge 2 ] || fail "s1 holds $s1_files files of 5/2: the test needs its copy"

note "s1 stopped; delete 5/2 on s0 and s2"
s1addr=$(store_addr 1)
store_stop 1
"$HEC_STORE" --servers "s0=$(store_addr 0),s1=$s1addr,s2=$(store_addr 2)" --key-file "$STORE_KEY" \
	--timeout 5000 delete 5 2 2>"$W/del.err" || fail "delete 5/2 failed: $(cat "$W/del.err")"
grep -q "warning: left out: s1 ($s1addr)" "$W/del.err" || fail "delete does not name s1 left out: $(cat "$W/del.err")"
for i in 0 2; do
	[ -f "$(store_dir $i)/objects/5/2/DELETED" ] || fail "s$i has no tombstone of 5/2"
	[ "$(find "$(store_dir $i)/objects/5/2" -type f ! -name DELETED | wc -l)" = 0 ] ||
		fail "s$i still holds files of 5/2: $(ls "$(store_dir $i)/objects/5/2")"
done

note "s1 back with its copy: 5/2 stays deleted"
store_start_one 1
[ -f "$(store_dir 1)/objects/5/2/MANIFEST" ] || fail "s1 lost its manifest of 5/2 by itself"
[ "$(hs latest 5)" = 1 ] || fail "latest 5 with s1 back: '$(hs latest 5)', expected 1"
expect_fail 1 "get 5/2/node0: checkpoint 5/2 was deleted \(s[02] holds its tombstone\)" hs get 5 2 node0
hs --quiet get 5 1 node0 | cmp - "$W/a" || fail "get 5/1 differs"
# a late writer cannot bring it back where the tombstone is
expect_fail 1 "s[02]: deleted" hs --replicas 3 --chunk-size 1M commit 5 2 "$W/e2.json"
[ -f "$(store_dir 0)/objects/5/2/MANIFEST" ] && fail "a commit put 5/2's manifest back on s0"

note "repair removes s1's copy"
hs repair 2>"$W/rep.err" || fail "repair failed: $(cat "$W/rep.err")"
cat "$W/rep.err"
grep -qE "^hec-store: repair: 0 copies made, 0 chunks lost, 1 deleted copies removed, 3 servers$" "$W/rep.err" ||
	fail "repair's figures: $(cat "$W/rep.err")"
[ -f "$(store_dir 1)/objects/5/2/DELETED" ] || fail "s1 has no tombstone of 5/2 after repair"
[ "$(store_files 5 2)" = 3 ] || fail "5/2: $(store_files 5 2) files after repair, expected the 3 tombstones"
[ "$(hs latest 5)" = 1 ] || fail "latest 5 after repair: '$(hs latest 5)'"
store_check_copies "$W/e1.json" 5 1 2
# the second repair finds nothing to do
hs --json repair >"$W/rep2.json" 2>/dev/null || fail "second repair failed"
[ "$(jq -c '[.copied, .lost, .removed]' "$W/rep2.json")" = "[0,0,0]" ] ||
	fail "second repair: $(cat "$W/rep2.json")"

note "delete of the only epoch: latest finds none"
hs --quiet delete 5 1 || fail "delete 5/1 failed"
expect_fail 1 "latest 5: no committed checkpoint" hs latest 5
note "PASS"
