#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Checkpoint storage end to end on loopback (doc/storage.md): three
# standalone hecstored, hec-store put from a pipe striped and replicated
# (r=2, 1 MiB chunks), every chunk on 2 distinct servers where the entry
# says, commit, latest, get back byte for byte, abort of an uncommitted
# epoch, delete, a wrong key refused, a server that does not answer left
# out; hec-store without --servers in a cluster with --storage 2; then a put
# and a get under valgrind.
# hec-test-timeout: 600
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/storage_lib.sh"
command -v jq >/dev/null || skip "jq not installed"

store_start 3
note "servers: $(store_servers)"
W="$TEST_DIR/work"
mkdir -p "$W"
head -c $((40 << 20)) /dev/urandom >"$W/a"
head -c $((3 << 20 | 12345)) /dev/urandom >"$W/b"   # a short last chunk

note "put 40 MiB from a pipe, r=2, 1 MiB chunks"
cat "$W/a" | hs --replicas 2 --chunk-size 1M put 7 1 node0 >"$W/a.json" 2>"$W/a.err" ||
	fail "put failed: $(cat "$W/a.err")"
cat "$W/a.err"
grep -qE "^hec-store: put 7/1/node0: 41943040 bytes in .* 40 chunks x 2 copies, 3 servers, (tcp|verbs)$" "$W/a.err" ||
	fail "put's figures: $(cat "$W/a.err")"
[ "$(jq -r .size "$W/a.json")" = 41943040 ] || fail "entry size $(jq .size "$W/a.json")"
[ "$(jq '.chunks | length' "$W/a.json")" = 40 ] || fail "entry has $(jq '.chunks | length' "$W/a.json") chunks"
store_check_copies "$W/a.json" 7 1 2
# spread: the ring gives each of 3 servers 2/3 of 40 chunks
for i in 0 1 2; do
	n=$(find "$(store_dir $i)/objects/7/1" -name 'node0.*' | wc -l)
	[ "$n" -ge 20 ] || fail "s$i holds $n chunks of 40: not spread"
done
cat "$W/b" | hs --quiet --replicas 2 --chunk-size 1M put 7 1 node1 >"$W/b.json" ||
	fail "put node1 failed"
[ "$(jq '.chunks[3].len' "$W/b.json")" = 12345 ] || fail "last chunk of node1: $(jq -c '.chunks[3]' "$W/b.json")"
store_check_copies "$W/b.json" 7 1 2

note "commit, latest"
expect_fail 1 "no committed checkpoint" hs latest 7
hs commit 7 1 "$W/a.json" "$W/b.json" || fail "commit 7 1 failed"
for i in 0 1 2; do
	[ -f "$(store_dir $i)/objects/7/1/MANIFEST" ] || fail "s$i has no manifest of 7/1"
done
[ "$(hs latest 7)" = 1 ] || fail "latest 7: '$(hs latest 7)', expected 1"
hs --json latest 7 >"$W/m.json" || fail "latest --json failed"
[ "$(jq -r '[.job, .epoch, (.streams | length), .streams[0].part] | join(" ")' "$W/m.json")" = "7 1 2 node0" ] ||
	fail "manifest: $(head -c 300 "$W/m.json")"
# epoch 2, its entry given on stdin
head -c 100000 "$W/a" | hs --quiet put 7 2 node0 | hs --quiet commit 7 2 || fail "put|commit 7 2 failed"
[ "$(hs latest 7)" = 2 ] || fail "latest 7: '$(hs latest 7)', expected 2"

# job 8: a checkpoint of 100 partitions, its entries one per line in a
# file (--entries: what the controller commits with, no argument per
# part; it used to stop at 64 parts).  One stream is stored; the other 99
# entries name its chunks under their own part (a commit checks the
# manifest, not that the chunks are there).
head -c 100000 "$W/a" | hs --quiet put 8 1 p0 >"$W/p0.json" || fail "put 8 1 p0 failed"
for i in $(seq 0 99); do jq -c ".part = \"p$i\"" "$W/p0.json"; done >"$W/entries.jsonl"
expect_fail 1 "entries in --entries .* and as arguments" hs commit --entries "$W/entries.jsonl" 8 1 "$W/p0.json"
expect_fail 2 "--entries: only for commit" hs --entries "$W/entries.jsonl" latest 8
hs --quiet commit --entries "$W/entries.jsonl" 8 1 || fail "commit 8 1 --entries failed"
[ "$(hs --json latest 8 | jq -r '[(.streams | length), .streams[99].part] | join(" ")')" = "100 p99" ] ||
	fail "manifest of 8/1: $(hs --json latest 8 | head -c 300)"
hs --quiet get 8 1 p0 | cmp - <(head -c 100000 "$W/a") || fail "get 8/1/p0 differs"

note "get back"
hs get 7 1 node0 2>"$W/get.err" | cmp - "$W/a" || fail "get 7/1/node0 differs from what was put"
cat "$W/get.err"
grep -qE "^hec-store: get 7/1/node0: 41943040 bytes in .*40 chunks, 3 servers" "$W/get.err" ||
	fail "get's figures: $(cat "$W/get.err")"
hs --quiet get 7 1 node1 | cmp - "$W/b" || fail "get 7/1/node1 differs"
hs --quiet get 7 2 node0 | cmp - <(head -c 100000 "$W/a") || fail "get 7/2/node0 differs"
expect_fail 1 "7/1/nodeX.*no stream nodeX" hs get 7 1 nodeX

note "a stream on one server read with all three named, r=1: more chunks asked ahead than its slots (it hung once)"
s0="s0=$(store_addr 0)"
"$HEC_STORE" --servers "$s0" --key-file "$STORE_KEY" --quiet --replicas 1 --chunk-size 1M \
	put 7 4 node0 <"$W/a" >"$W/one.json" || fail "put 7/4 to s0 alone failed"
"$HEC_STORE" --servers "$s0" --key-file "$STORE_KEY" --quiet commit 7 4 "$W/one.json" ||
	fail "commit 7/4 to s0 alone failed"
timeout 60 "$HEC_STORE" --servers "$(store_servers)" --key-file "$STORE_KEY" --quiet --replicas 1 \
	get 7 4 node0 >"$W/one.out"
rc=$?
[ "$rc" = 0 ] || fail "get 7/4 with every server named, r=1: exit $rc"
cmp -s "$W/one.out" "$W/a" || fail "get 7/4 differs from what was put"
hs delete 7 4 || fail "delete 7/4 failed"

note "abort"
head -c $((3 << 20)) /dev/urandom | hs --quiet --chunk-size 1M put 7 3 node0 >/dev/null ||
	fail "put 7 3 failed"
[ "$(store_files 7 3)" = 6 ] || fail "7/3: $(store_files 7 3) files, expected 3 chunks x 2"
hs abort 7 3 || fail "abort 7 3 failed"
[ "$(store_files 7 3)" = 0 ] || fail "7/3: $(store_files 7 3) files left after abort"
expect_fail 1 "abort 7/1: s[0-2]: committed" hs abort 7 1
[ "$(store_files 7 1)" = $((40 * 2 + 4 * 2 + 3)) ] || fail "7/1: $(store_files 7 1) files after a refused abort"

note "delete"
hs delete 7 1 || fail "delete 7 1 failed"
# only the tombstones are left (doc/storage.md, "Deleting")
[ "$(store_files 7 1)" = 3 ] || fail "7/1: $(store_files 7 1) files left after delete, expected 3 tombstones"
for i in 0 1 2; do
	[ -f "$(store_dir $i)/objects/7/1/DELETED" ] || fail "s$i has no tombstone of 7/1"
done
expect_fail 1 "get 7/1/node0: checkpoint 7/1 was deleted \(s[0-2] holds its tombstone\)" hs get 7 1 node0
[ "$(hs latest 7)" = 2 ] || fail "latest 7 after delete: '$(hs latest 7)', expected 2"

note "a wrong key"
echo wrong >"$W/bad.key"
expect_fail 1 "s0: refused: .*key" "$HEC_STORE" --servers "$(store_servers)" --key-file "$W/bad.key" latest 7
# a binary file given as the key: said so, before any server is asked (it
# was "sending STORE_HELLO: Cannot allocate memory")
head -c 32 /dev/urandom | tr -d '\n' | sed 's/^/\x01/' >"$W/bin.key"
expect_fail 1 "^hec-store: $W/bin.key: not text" "$HEC_STORE" --servers "$(store_servers)" --key-file "$W/bin.key" latest 7

note "a server that does not answer is left out"
# a port nobody listens on (a closed server's), as a fourth server
dead=$(store_addr 2)
store_stop 2
# s2 is down now: a session with s0, s1 and the dead one
out=$("$HEC_STORE" --servers "s0=$(store_addr 0),s1=$(store_addr 1),s2=$dead" \
	--key-file "$STORE_KEY" --timeout 5000 --chunk-size 1M put 8 1 node0 \
	<"$W/b" 2>"$W/dead.err") || fail "put with a server down failed: $(cat "$W/dead.err")"
grep -q "warning: left out: s2 ($dead)" "$W/dead.err" || fail "the dead server is not named: $(cat "$W/dead.err")"
printf '%s\n' "$out" >"$W/dead.json"
[ "$(jq '[.chunks[].on | length] | min' "$W/dead.json")" = 2 ] ||
	fail "with s2 down, chunks not on 2 servers: $(jq -c '[.chunks[].on]' "$W/dead.json")"
jq -e '[.chunks[].on[]] | index("s2") == null' "$W/dead.json" >/dev/null || fail "a chunk placed on dead s2"
store_start_one 2

note "without --servers: the cluster's controller names its servers, its key is used"
cluster_up 1 --storage 2
head -c $((2 << 20)) "$W/a" | "$HEC_STORE" --quiet --chunk-size 1M put 11 1 node0 >"$W/c.json" ||
	fail "put through the controller's list failed"
[ "$(jq -r '[.chunks[].on[]] | unique | join(",")' "$W/c.json")" = "s0,s1" ] ||
	fail "chunks not on the cluster's s0 and s1: $(jq -c '[.chunks[].on]' "$W/c.json")"
"$HEC_STORE" --quiet commit 11 1 "$W/c.json" || fail "commit through the controller's list failed"
"$HEC_STORE" --quiet get 11 1 node0 | cmp - <(head -c $((2 << 20)) "$W/a") ||
	fail "get through the controller's list differs"

if ldd "$HEC_STORE" | grep -q libasan; then
	note "a sanitizer build: hec-store not run under valgrind"
elif command -v valgrind >/dev/null; then
	note "hec-store under valgrind"
	VG="valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file=$W/vg.%p.log"
	head -c $((5 << 20)) "$W/a" | HS_WRAP=$VG hs --quiet --chunk-size 1M put 9 1 node0 >"$W/vg.json" ||
		fail "put under valgrind failed ($?): $(cat "$W"/vg.*.log | tail -40)"
	HS_WRAP=$VG hs --quiet commit 9 1 "$W/vg.json" || fail "commit under valgrind failed"
	HS_WRAP=$VG hs --quiet get 9 1 node0 | cmp - <(head -c $((5 << 20)) "$W/a") ||
		fail "get under valgrind differs or failed: $(cat "$W"/vg.*.log | tail -40)"
	for f in "$W"/vg.*.log; do
		grep -q "ERROR SUMMARY: 0 errors" "$f" || fail "valgrind: $(cat "$f")"
	done
else
	note "valgrind not installed: hec-store not run under it"
fi
note "PASS"
