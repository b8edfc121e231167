#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Checkpoint storage under loss, corruption and bad input (doc/storage.md):
# three standalone hecstored, r=2, 1 MiB chunks, streams fed through a FIFO
# in pieces so that a kill lands mid-stream when K chunks are on disk (no
# sleeps guessing).  A server SIGKILLed during a put and during a get: the
# stream completes (the lost server named), committed epochs read back byte
# for byte; a server back on its port (files kept, then files lost) is
# repaired to 2 copies of every chunk.  Chunk files flipped, truncated or
# grown on a server's disk: read from the replica, counted, rewritten good.
# Unknown objects: a clear error.  A client SIGKILLed mid-write while a
# stranger with a wrong key is refused: nothing committed, the partial epoch
# collected.  A full disk (a small tmpfs): placed around, or a clean "No
# space left on device"; the server keeps serving.  Then the embedded
# cluster: a kill shown by `hec storage`, the server back and repaired, a
# corrupt copy counted there.  After every case the servers not killed on
# purpose are still running.
# hec-test-timeout: 900
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/storage_lib.sh"
command -v jq >/dev/null || skip "jq not installed"

TMPFS="$STORE_DIR/s3"
MOUNTED=0
test_cleanup() {
	local f
	[ -n "${PUT_PID:-}" ] && kill -9 "$PUT_PID" 2>/dev/null
	[ -n "${CAT_PID:-}" ] && kill -9 "$CAT_PID" 2>/dev/null
	# a server stopped on purpose hears no SIGTERM until it runs again
	for f in "$STORE_DIR"/s*.pid; do [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null; done
	store_cleanup
	[ "$MOUNTED" = 1 ] && umount "$TMPFS"
	return 0
}
# The full disk needs a small file system of its own: mount it first, so
# that a refusal is known before anything else runs (the other cases run
# anyway; the test then ends in SKIP naming the reason).
mkdir -p "$TMPFS"
NOFULL=""
if mount -t tmpfs -o size=8m hec-test-full "$TMPFS" 2>"$TEST_DIR/mount.err"; then
	MOUNTED=1
else
	NOFULL="mount -t tmpfs refused: $(cat "$TEST_DIR/mount.err")"
fi

W="$TEST_DIR/work"
mkdir -p "$W"
MiB=$((1 << 20))

# alive I...: servers sI are still running.
alive() {
	local i
	for i in "$@"; do
		kill -0 "$(store_pid "$i")" 2>/dev/null ||
			fail "hecstored s$i died: $(tail -n 20 "$HEC_DIR/log/hecstored-s$i.log")"
	done
}
# chunks_on JOB EPOCH: chunk files (not temporary, not MANIFEST) of that epoch on all servers.
chunks_on() {
	local i d
	for i in $(seq 0 $((STORE_N - 1))); do
		d="$(store_dir "$i")/objects/$1/$2"
		[ -d "$d" ] && find "$d" -type f ! -name '.tmp*' ! -name MANIFEST
	done | wc -l
}
# wait_copy JOB EPOCH FILE I...: until FILE of that epoch is on one of servers sI (60 s at most).
wait_copy() {
	local job=$1 epoch=$2 f=$3 t i; shift 3
	for t in $(seq 600); do
		for i in "$@"; do [ -f "$(store_dir "$i")/objects/$job/$epoch/$f" ] && return 0; done
		sleep 0.1
	done
	fail "$job/$epoch/$f on none of s$* after 60 s"
}
# wait_chunks JOB EPOCH N: until N chunk files of it are on disk (60 s at most).
wait_chunks() {
	local t
	for t in $(seq 600); do
		[ "$(chunks_on "$1" "$2")" -ge "$3" ] && return 0
		sleep 0.1
	done
	fail "$1/$2: $(chunks_on "$1" "$2") chunk files after 60 s, waited for $3"
}
# entry_of JOB EPOCH PART SERVER: the stream's entry in SERVER's committed manifest.
entry_of() {
	jq -c --arg p "$3" '.streams[] | select(.part == $p)' "$(store_dir "$4")/objects/$1/$2/MANIFEST"
}
# check_all_copies: every chunk of committed 5/1 and 5/2 has 2 copies where
# the manifest (s0's) says.
check_all_copies() {
	entry_of 5 1 node0 0 >"$W/m1.json" || fail "no manifest of 5/1 on s0"
	entry_of 5 2 node0 0 >"$W/m2.json" || fail "no manifest of 5/2 on s0"
	store_check_copies "$W/m1.json" 5 1 2
	store_check_copies "$W/m2.json" 5 2 2
}
# figures FILE PATTERN WHAT: hec-store's stderr FILE matches PATTERN.
figures() { grep -qE -- "$2" "$1" || fail "$3: hec-store printed '$(cat "$1")', expected /$2/"; }

store_start 3
note "servers: $(store_servers)"
head -c $((40 * MiB)) /dev/urandom >"$W/a"
head -c $((32 * MiB)) /dev/urandom >"$W/b"

note "epoch 1 committed"
hs --quiet --chunk-size 1M put 5 1 node0 <"$W/a" >"$W/e1.json" || fail "put 5/1 failed"
hs --quiet commit 5 1 "$W/e1.json" || fail "commit 5/1 failed"

note "SIGKILL s1 during a put of epoch 2, copies to it in flight"
mkfifo "$W/put.in"
"$HEC_STORE" --servers "$(store_servers)" --key-file "$STORE_KEY" --chunk-size 1M \
	put 5 2 node0 <"$W/put.in" >"$W/e2.json" 2>"$W/e2.err" &
PUT_PID=$!
exec 7>"$W/put.in"
head -c $((8 * MiB)) "$W/b" >&7
wait_chunks 5 2 12
# s1 stopped: the copies of chunks 8.. meant for it stay unanswered
kill -STOP "$(store_pid 1)"
tail -c +$((8 * MiB + 1)) "$W/b" | head -c $((4 * MiB)) >&7
for i in 8 9 10; do wait_copy 5 2 node0.$i 0 2; done
store_stop 1 KILL
tail -c +$((12 * MiB + 1)) "$W/b" >&7
exec 7>&-
wait "$PUT_PID" || fail "put 5/2 failed when s1 died (r=2 and 2 servers left): $(cat "$W/e2.err")"
PUT_PID=
cat "$W/e2.err"
figures "$W/e2.err" "^hec-store: put 5/2/node0: 33554432 bytes in .* 32 chunks x 2 copies, 2 servers" "put 5/2"
grep -q degraded "$W/e2.err" && fail "chunks degraded though 2 servers were left: $(cat "$W/e2.err")"
figures "$W/e2.err" "^hec-store: warning: lost during put: s1 \(127\.0\.0\.1:[0-9]+\): s1: connection closed" \
	"the server lost mid-put is named"
# chunks 8.. were cut after s1 stopped: none of them on s1
jq -e '[.chunks[8:][].on[]] | index("s1") == null' "$W/e2.json" >/dev/null ||
	fail "a chunk cut after s1 died was placed on it: $(jq -c '[.chunks[].on]' "$W/e2.json")"
store_check_copies "$W/e2.json" 5 2 2
alive 0 2
hs commit 5 2 "$W/e2.json" 2>"$W/c2.err" || fail "commit 5/2 with s1 down failed: $(cat "$W/c2.err")"
figures "$W/c2.err" "^hec-store: warning: left out: s1 " "commit with s1 down"
hs --quiet get 5 2 node0 | cmp - "$W/b" || fail "get 5/2 differs from what was put"
hs get 5 1 node0 2>"$W/g1.err" | cmp - "$W/a" || fail "get 5/1 with s1 down differs: $(cat "$W/g1.err")"
figures "$W/g1.err" "^hec-store: get 5/1/node0: 41943040 bytes in .*40 chunks, 2 servers" "get 5/1 with s1 down"
[ "$(hs latest 5)" = 2 ] || fail "latest 5: '$(hs latest 5)', expected 2"

note "s1 back on its port with its files: repair commits 5/2 there"
[ -e "$(store_dir 1)/objects/5/2/MANIFEST" ] && fail "s1 has a manifest of 5/2 it could not have received"
store_start_one 1
hs repair 2>"$W/r1.err" || fail "repair failed: $(cat "$W/r1.err")"
figures "$W/r1.err" "^hec-store: repair: 0 copies made, 0 chunks lost, 0 deleted copies removed, 3 servers$" "repair with s1's files kept"
[ "$("$HEC_STORE" --servers "s1=$(store_addr 1)" --key-file "$STORE_KEY" latest 5)" = 2 ] ||
	fail "s1 alone does not know 5/2 after repair"
check_all_copies

note "s1 back having lost its files: repair copies them again"
store_stop 1
# the copies the manifests place on s1 (a file s1 wrote as it died may be there too, unlisted)
lost=$(cat "$W/m1.json" "$W/m2.json" | jq -s '[.[].chunks[].on[] | select(. == "s1")] | length')
[ "$lost" -ge 20 ] || fail "the manifests place only $lost chunks of 5/1 and 5/2 on s1"
rm -rf "$(store_dir 1)/objects/5"
store_start_one 1
hs repair 2>"$W/r2.err" || fail "repair failed: $(cat "$W/r2.err")"
figures "$W/r2.err" "^hec-store: repair: $lost copies made, 0 chunks lost, 0 deleted copies removed, 3 servers$" "repair of s1's $lost lost chunks"
check_all_copies
[ -f "$(store_dir 1)/objects/5/1/MANIFEST" ] && [ -f "$(store_dir 1)/objects/5/2/MANIFEST" ] ||
	fail "s1 lacks manifests after repair: $(ls "$(store_dir 1)/objects/5/"*)"
alive 0 1 2

note "SIGKILL s2 during a get of epoch 1, a read from it in flight"
mkfifo "$W/get.out"
"$HEC_STORE" --servers "$(store_servers)" --key-file "$STORE_KEY" get 5 1 node0 \
	>"$W/get.out" 2>"$W/g2.err" &
PUT_PID=$!
exec 8<"$W/get.out"
dd bs=1M count=8 iflag=fullblock <&8 >"$W/got" 2>/dev/null
# s2 stopped: the stream stalls before the first chunk it must read from s2
# (one not fetched ahead already), with that read in flight
kill -STOP "$(store_pid 2)"
cat <&8 >>"$W/got" &
CAT_PID=$!
stalled=""
for t in $(seq 600); do
	g=$(stat -c %s "$W/got")
	if [ $((g % MiB)) = 0 ] && [ "$g" -ge $((8 * MiB)) ] && [ "$g" -lt $((40 * MiB)) ] &&
		[ "$(jq -r ".chunks[$((g / MiB))].on[0]" "$W/m1.json")" = s2 ]; then
		sleep 0.2
		[ "$(stat -c %s "$W/got")" = "$g" ] && { stalled=$((g / MiB)); break; }
	fi
	sleep 0.1
done
[ -n "$stalled" ] || fail "the get did not stall on stopped s2 in 60 s ($(stat -c %s "$W/got") bytes read)"
note "stalled before chunk $stalled (first holder s2): SIGKILL s2"
store_stop 2 KILL
wait "$CAT_PID"
exec 8<&-
wait "$PUT_PID" || fail "get 5/1 failed when s2 died: $(cat "$W/g2.err")"
PUT_PID=
cat "$W/g2.err"
cmp "$W/got" "$W/a" || fail "get 5/1 with s2 killed mid-stream differs"
figures "$W/g2.err" "^hec-store: warning: lost during get: s2 \(127\.0\.0\.1:[0-9]+\): s2: connection closed" \
	"the server lost mid-get is named"
alive 0 1
store_start_one 2
hs repair 2>"$W/r3.err" || fail "repair failed: $(cat "$W/r3.err")"
figures "$W/r3.err" "^hec-store: repair: 0 copies made, 0 chunks lost, 0 deleted copies removed, 3 servers$" "repair after a get"
check_all_copies

note "s0's copies flipped, cut short, grown: read from the replica, counted, rewritten"
# chunks whose first holder is s0 (the one get asks first)
idx=($(jq -r '.chunks | to_entries[] | select(.value.on[0] == "s0") | .key' "$W/m1.json" | head -4))
[ ${#idx[@]} = 4 ] || fail "fewer than 4 chunks of 5/1 read from s0 first: $(jq -c '[.chunks[].on]' "$W/m1.json")"
d0="$(store_dir 0)/objects/5/1"
flip_byte "$d0/node0.${idx[0]}" $((64 + 1000)) || fail "cannot flip a byte of node0.${idx[0]}"
flip_byte "$d0/node0.${idx[1]}" 20 || fail "cannot flip a byte of node0.${idx[1]}"
truncate -s 30 "$d0/node0.${idx[2]}"                                          # shorter than a header
printf 'Y' >>"$d0/node0.${idx[3]}"                                            # one byte too many
hs get 5 1 node0 2>"$W/g3.err" | cmp - "$W/a" || fail "get 5/1 with corrupt copies differs: $(cat "$W/g3.err")"
cat "$W/g3.err"
figures "$W/g3.err" "^hec-store: get 5/1/node0: 41943040 bytes in .*40 chunks, 4 corrupt copies, 4 repaired, 3 servers" \
	"get with 4 bad copies on s0"
for i in "${idx[@]}"; do
	other=$(jq -r ".chunks[$i].on[1]" "$W/m1.json")
	cmp -s "$d0/node0.$i" "$(store_dir "${other#s}")/objects/5/1/node0.$i" ||
		fail "s0's node0.$i was not rewritten as $other's good copy"
	grep -q "s0: chunk 5/1/node0.$i is corrupt" "$HEC_DIR/log/hecstored-s0.log" ||
		fail "s0 did not log node0.$i as corrupt"
done
hs status --json >"$W/status.json" || fail "status failed"
[ "$(jq '.[] | select(.name == "s0") | .corrupt' "$W/status.json")" = 4 ] ||
	fail "s0's corrupt count: $(cat "$W/status.json")"
hs get 5 1 node0 2>"$W/g4.err" | cmp - "$W/a" || fail "get 5/1 after the repair differs"
grep -q corrupt "$W/g4.err" && fail "copies still corrupt after they were rewritten: $(cat "$W/g4.err")"
check_all_copies
alive 0 1 2

note "a chunk bad on every holder: the get names each and ends (it hung once)"
i=${idx[0]}
for h in $(jq -r ".chunks[$i].on[]" "$W/m1.json"); do
	f="$(store_dir "${h#s}")/objects/5/1/node0.$i"
	cp "$f" "$W/keep.$h"
	flip_byte "$f" $((64 + 2000)) || fail "cannot flip a byte of $f"
done
expect_fail 1 "^hec-store: get 5/1/node0 chunk $i: no good copy: s[0-2]: corrupt; s[0-2]: corrupt$" \
	timeout 60 bash -c '"$0" --servers "$1" --key-file "$2" --quiet get 5 1 node0 >/dev/null' \
	"$HEC_STORE" "$(store_servers)" "$STORE_KEY"
for h in $(jq -r ".chunks[$i].on[]" "$W/m1.json"); do
	cp "$W/keep.$h" "$(store_dir "${h#s}")/objects/5/1/node0.$i"
done
hs get 5 1 node0 2>"$W/g5.err" | cmp - "$W/a" || fail "get 5/1 after putting the copies back: $(cat "$W/g5.err")"
alive 0 1 2

note "unknown objects"
expect_fail 1 "^hec-store: get 99/1/node0: no committed checkpoint$" hs get 99 1 node0
expect_fail 1 "^hec-store: get 5/7/node0: no committed checkpoint$" hs get 5 7 node0
expect_fail 1 "^hec-store: latest 99: no committed checkpoint$" hs latest 99
expect_fail 1 "^hec-store: get 5/1/nodeZ: checkpoint 5/1 has no stream nodeZ$" hs get 5 1 nodeZ
expect_fail 1 "^hec-store: get 5/1/\.\./x: bad name$" hs get 5 1 ../x
hs delete 99 1 || fail "delete of an epoch nobody holds failed"
hs abort 5 7 || fail "abort of an epoch nobody holds failed"
[ "$(hs latest 5)" = 2 ] || fail "latest 5: '$(hs latest 5)' after the unknown objects"
alive 0 1 2

note "a client SIGKILLed mid-write, a stranger refused meanwhile; GC takes the partial epoch"
for i in 0 1 2; do store_stop "$i"; store_start_one "$i" "" --gc-grace 2 --gc-interval 1; done
mkfifo "$W/put3.in"
"$HEC_STORE" --servers "$(store_servers)" --key-file "$STORE_KEY" --chunk-size 1M \
	put 5 3 node0 <"$W/put3.in" >"$W/e3.json" 2>"$W/e3.err" &
PUT_PID=$!
exec 7>"$W/put3.in"
head -c $((8 * MiB)) "$W/b" >&7
wait_chunks 5 3 12
echo wrong >"$W/bad.key"
expect_fail 1 "^hec-store: s0: refused: wrong cluster key; s1: refused: wrong cluster key; s2: refused: wrong cluster key$" \
	"$HEC_STORE" --servers "$(store_servers)" --key-file "$W/bad.key" latest 5
# the writer goes on after the stranger's refusal
head -c $((8 * MiB)) "$W/a" >&7
wait_chunks 5 3 28
kill -9 "$PUT_PID"
wait "$PUT_PID" 2>/dev/null
PUT_PID=
exec 7>&-
[ -s "$W/e3.json" ] && fail "the killed put printed an entry: $(cat "$W/e3.json")"
[ "$(hs latest 5)" = 2 ] || fail "latest 5: '$(hs latest 5)' after a writer died, expected 2"
expect_fail 1 "^hec-store: get 5/3/node0: no committed checkpoint$" hs get 5 3 node0
for t in $(seq 300); do [ "$(store_files 5 3)" = 0 ] && break; sleep 0.1; done
[ "$(store_files 5 3)" = 0 ] || fail "5/3: $(store_files 5 3) files left 30 s after its writer died (gc_grace 2 s)"
for i in 0 1 2; do
	grep -q "s$i: garbage collection: .* 1 abandoned uncommitted epochs removed" \
		"$HEC_DIR/log/hecstored-s$i.log" || fail "s$i did not log collecting 5/3"
done
hs --quiet get 5 1 node0 | cmp - "$W/a" || fail "get 5/1 after GC differs"
hs --quiet get 5 2 node0 | cmp - "$W/b" || fail "get 5/2 after GC differs"
check_all_copies
alive 0 1 2
# back to a long gc_grace: a put and its commit are separate commands
for i in 0 1 2; do store_stop "$i"; store_start_one "$i" "" --gc-grace 3600; done

if [ "$MOUNTED" = 1 ]; then
	note "a full disk: s3 on an 8 MiB tmpfs"
	store_start_one 3
	STORE_N=4
	s3() { "$HEC_STORE" --servers "s3=$(store_addr 3)" --key-file "$STORE_KEY" --replicas 1 --chunk-size 1M "$@"; }
	head -c 100000 /dev/urandom >"$W/small"
	head -c $((24 * MiB)) /dev/urandom >"$W/c"
	s3 --quiet put 6 1 p <"$W/small" >"$W/s1.json" && s3 --quiet commit 6 1 "$W/s1.json" ||
		fail "a small checkpoint on s3 alone failed"
	# 24 MiB x 2 copies on 4 servers: s3's half of it does not fit
	hs --chunk-size 1M put 6 2 big <"$W/c" >"$W/c.json" 2>"$W/c.err" ||
		fail "put 6/2 with s3 full failed: $(cat "$W/c.err")"
	figures "$W/c.err" "^hec-store: put 6/2/big: 25165824 bytes in .* 24 chunks x 2 copies, 4 servers" "put around s3"
	store_check_copies "$W/c.json" 6 2 2
	on3=$(jq '[.chunks[].on[] | select(. == "s3")] | length' "$W/c.json")
	# its share is 12 of 24 (r=2 of 4 servers): it refused some
	[ "$on3" -lt 12 ] || fail "s3 took $on3 of 24 chunks on 8 MiB"
	grep -q "s3: put 6/2/big\.[0-9]* from .*: No space left on device" "$HEC_DIR/log/hecstored-s3.log" ||
		fail "s3 did not log its full disk"
	hs --quiet commit 6 2 "$W/c.json" || fail "commit 6/2 failed"
	hs --quiet get 6 2 big | cmp - "$W/c" || fail "get 6/2 differs"
	alive 0 1 2 3
	# s3 alone: nowhere else to go
	expect_fail 1 "^hec-store: put 6/3/big chunk [0-9]+: no server took it: s3: No space left on device$" \
		s3 put 6 3 big <"$W/c"
	[ -z "$(find "$TMPFS/objects" -name '.tmp*')" ] || fail "temporary files left on s3: $(find "$TMPFS/objects" -name '.tmp*')"
	alive 3
	s3 --quiet get 6 1 p | cmp - "$W/small" || fail "s3's committed 6/1 unreadable when full"
	hs --quiet delete 6 2 || fail "delete 6/2 failed"
	s3 --quiet abort 6 3 || fail "abort 6/3 failed"
	s3 --quiet put 6 4 p <"$W/small" >"$W/s4.json" && s3 --quiet commit 6 4 "$W/s4.json" ||
		fail "a small put on s3 after space was freed failed"
	s3 --quiet get 6 4 p | cmp - "$W/small" || fail "get 6/4 from s3 differs"
	alive 0 1 2 3
	store_stop 3
	STORE_N=3
fi

note "the embedded cluster: hec storage reports a killed server, its repair, a corrupt copy"
store_cleanup
# their pids are history: test_cleanup must not signal whoever has them now
rm -f "$STORE_DIR"/s*.pid
cluster_up 1 --storage 3
# the storage tests' helpers now look at the cluster's servers
store_dir() { echo "$HEC_DIR/store/s$1/data"; }
store_pid() { daemon_pid "s$1"; }
HS_CL=("$HEC_STORE" --chunk-size 1M)
# wait_field NAME FIELD JQ-TEST WHAT: hec storage's FIELD of NAME passes the test (20 s at most)
wait_field() {
	local t v=""
	for t in $(seq 200); do
		v=$("$HEC" storage --json | jq -c --arg n "$1" ".servers[] | select(.name == \$n) | .$2")
		jq -e "$3" >/dev/null 2>&1 <<<"$v" && return 0
		sleep 0.1
	done
	fail "$4: hec storage says $1 $2 = '$v': $("$HEC" storage)"
}
"${HS_CL[@]}" --quiet put 11 1 node0 <"$W/b" >"$W/k1.json" && "${HS_CL[@]}" --quiet commit 11 1 "$W/k1.json" ||
	fail "put/commit 11/1 in the cluster failed"
mkfifo "$W/put4.in"
"${HS_CL[@]}" put 11 2 node0 <"$W/put4.in" >"$W/k2.json" 2>"$W/k2.err" &
PUT_PID=$!
exec 7>"$W/put4.in"
head -c $((8 * MiB)) "$W/a" >&7
wait_chunks 11 2 12
kill -STOP "$(store_pid 1)"
tail -c +$((8 * MiB + 1)) "$W/a" | head -c $((4 * MiB)) >&7
for i in 8 9 10; do wait_copy 11 2 node0.$i 0 2; done
kill -9 "$(store_pid 1)"
tail -c +$((12 * MiB + 1)) "$W/a" >&7
exec 7>&-
wait "$PUT_PID" || fail "put 11/2 failed when s1 died: $(cat "$W/k2.err")"
PUT_PID=
figures "$W/k2.err" "^hec-store: warning: lost during put: s1 " "the server lost mid-put is named"
"${HS_CL[@]}" --quiet commit 11 2 "$W/k2.json" || fail "commit 11/2 with s1 down failed"
wait_field s1 state '. == "down"' "s1 killed"
"$HEC" storage | grep -qE '^s1 +down ' || fail "hec storage does not show s1 down: $("$HEC" storage)"
alive 0 2
# s1 comes back having lost job 11's chunk files (not its manifest of 11/1:
# what it counts as repaired is chunks put into epochs committed there)
find "$(store_dir 1)/objects/11" -type f ! -name MANIFEST -delete
[ -f "$(store_dir 1)/objects/11/1/MANIFEST" ] || fail "s1 has no manifest of 11/1"
start_store s1
wait_field s1 state '. == "up"' "s1 restarted"
# the controller repairs a server that registers again (storage_repair.sh
# tests how); wait for that repair to end
for t in $(seq 1200); do
	rep=$("$HEC" storage --json | jq -c '.repair // {}')
	[ "$(echo "$rep" | jq -r '.state')" = done ] && echo "$rep" | jq -e '.reason | test("s1")' >/dev/null && break
	sleep 0.1
done
echo "$rep" | jq -e '.state == "done" and .copied >= 1 and .lost == 0' >/dev/null ||
	fail "the controller's repair after s1 came back did not end well: $rep"
[ -f "$(store_dir 1)/objects/11/2/MANIFEST" ] || fail "s1 was not repaired: no manifest of 11/2"
entry_of 11 1 node0 0 >"$W/k1m.json" && entry_of 11 2 node0 0 >"$W/k2m.json" || fail "no manifests on s0"
store_check_copies "$W/k1m.json" 11 1 2
store_check_copies "$W/k2m.json" 11 2 2
wait_field s1 repaired '. >= 1' "s1's repaired copies"
i=$(jq -r '.chunks | to_entries[] | select(.value.on[0] == "s0") | .key' "$W/k1m.json" | head -1)
[ -n "$i" ] || fail "no chunk of 11/1 read from s0 first"
flip_byte "$(store_dir 0)/objects/11/1/node0.$i" $((64 + 77)) || fail "cannot flip a byte of 11/1/node0.$i"
"${HS_CL[@]}" get 11 1 node0 2>"$W/k3.err" | cmp - "$W/b" || fail "get 11/1 with a corrupt copy differs: $(cat "$W/k3.err")"
figures "$W/k3.err" ", 1 corrupt copies, 1 repaired, 3 servers" "get 11/1 with a corrupt copy"
wait_field s0 corrupt '. >= 1' "s0's corrupt copy"
"$HEC" storage | grep -qE '^s0 +up .* 1 corrupt copies found$' || fail "hec storage does not show s0's corrupt copy: $("$HEC" storage)"
"${HS_CL[@]}" --quiet get 11 2 node0 | cmp - "$W/a" || fail "get 11/2 differs"
alive 0 1 2

[ -n "$NOFULL" ] && skip "every other case passed; the full disk not tested: $NOFULL"
note "PASS"
