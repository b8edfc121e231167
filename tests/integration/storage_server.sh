#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# hecstored end to end over the fabric layer (tcp on loopback), driven by
# hec-storeprobe message by message: the cluster key, requests good and bad,
# RMA in and out of the slots, corruption found, commit/manifest/list/abort,
# GC of an abandoned epoch but not of one whose writer is connected, and
# registration with a stand-in controller (refused once, then REGISTERED and
# STORE_STATUS, then re-registering after the link drops).  Under valgrind
# when it is there (not in sanitizer builds): SIGTERM exits 0 with nothing lost.
. "$(dirname "$0")/lib.sh"

STORED="$HEC_BUILDDIR/hecstored"
PROBE="$HEC_BUILDDIR/tests/tools/hec-storeprobe"
S="$TEST_DIR/s0"
mkdir -p "$HEC_DIR/log"
LOG="$HEC_DIR/log/hecstored.log"
CTL_LOG="$HEC_DIR/log/fake-ctl.log"
echo "k3y-for-test" >"$TEST_DIR/key"
command -v python3 >/dev/null || skip "python3 not installed (the stand-in controller)"

VG=()
if command -v valgrind >/dev/null && ! ldd "$STORED" | grep -q libasan; then
	VG=(valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible
	    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99
	    --log-file="$TEST_DIR/vg.%p.log")
fi

# The controller's side of the agent port, as doc/storage.md says it answers:
# the 1st connection is refused (ERROR), the 2nd is REGISTERED and dropped
# after two STORE_STATUS, the 3rd is REGISTERED and kept.
cat >"$TEST_DIR/fakectl.py" <<'EOF'
import json, socket, struct, sys
def send(c, t, body):
    p = json.dumps(body).encode()
    c.sendall(b"HC" + bytes([1, t]) + struct.pack(">I", len(p)) + p)
def recv(c):
    h = b""
    while len(h) < 8:
        d = c.recv(8 - len(h))
        if not d: return None, None
        h += d
    n = struct.unpack(">I", h[4:8])[0]; p = b""
    while len(p) < n:
        d = c.recv(n - len(p))
        if not d: return None, None
        p += d
    return h[3], json.loads(p)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
log = open(sys.argv[2], "a", buffering=1)
for conn in range(1, 4):
    c, _ = s.accept(); statuses = 0
    while True:
        t, b = recv(c)
        if t is None: log.write("conn %d closed\n" % conn); break
        log.write("conn %d type %d %s\n" % (conn, t, json.dumps(b, sort_keys=True)))
        if t == 54 and conn == 1:
            send(c, 1, {"error": "name s0 is held by a live server"}); break
        if t == 54:
            send(c, 11, {"heartbeat_ms": 300})
        if t == 55:
            statuses += 1
            if conn == 2 and statuses == 2: break
    c.close()
EOF
python3 "$TEST_DIR/fakectl.py" "$TEST_DIR/ctl.port" "$CTL_LOG" &
CTL_PID=$!
for i in $(seq 50); do [ -s "$TEST_DIR/ctl.port" ] && break; sleep 0.1; done
[ -s "$TEST_DIR/ctl.port" ] || fail "the stand-in controller did not start"
CTL="127.0.0.1:$(cat "$TEST_DIR/ctl.port")"

test_cleanup() {
	kill "$CTL_PID" 2>/dev/null
	[ -n "${WRITER_PID:-}" ] && kill "$WRITER_PID" 2>/dev/null
	[ -n "${SPID:-}" ] && kill -9 "$SPID" 2>/dev/null
	return 0
}

note "usage errors"
"$STORED" --listen 127.0.0.1:0 >/dev/null 2>&1
[ $? = 2 ] || fail "hecstored without a dir should exit 2"
"$STORED" --dir "$S" --slot-size 12x >/dev/null 2>&1
[ $? = 2 ] || fail "a bad slot size should exit 2"

note "start (${VG[0]:-no valgrind})"
"${VG[@]}" "$STORED" --dir "$S" --listen 127.0.0.1:0 --name s0 --slots 4 --key-file "$TEST_DIR/key" \
	--controller "$CTL" --gc-grace 3 --gc-interval 1 -o log_level=debug -o max_strangers=8 >>"$LOG" 2>&1 &
SPID=$!
for i in $(seq 600); do [ -s "$S/hecstored.addr" ] && break; sleep 0.1; done
[ -s "$S/hecstored.addr" ] || fail "no $S/hecstored.addr after 60 s"
read -r ADDR PROV <"$S/hecstored.addr"
[ "$PROV" = tcp ] || fail "provider '$PROV' in hecstored.addr, expected tcp"
case $ADDR in 127.0.0.1:[1-9]*) ;; *) fail "address '$ADDR' in hecstored.addr" ;; esac

# probe LINES...: one answer line per command, into $OUT
probe() { OUT=$(printf '%s\n' "$@" | timeout 120 "$PROBE" "$ADDR" --timeout 30000) ||
	fail "hec-storeprobe failed: $OUT"; }
# check N JQ-FILTER WHAT: line N of $OUT passes the filter
check() { local l; l=$(sed -n "${1}p" <<<"$OUT")
	jq -e "$2" >/dev/null 2>&1 <<<"$l" || fail "$3: answer $1 is '$l'"; }

note "a second server on the same directory is refused"
"$STORED" --dir "$S" --listen 127.0.0.1:0 >"$TEST_DIR/second.log" 2>&1
[ $? != 0 ] && grep -q "another hecstored" "$TEST_DIR/second.log" ||
	fail "a second hecstored on $S: $(cat "$TEST_DIR/second.log")"

note "the key and STORE_HELLO first"
probe "hello wrong c1" "status"
check 1 '.type == "ERROR" and .error == "wrong cluster key"' "wrong key"
check 2 '.closed or .send' "after a wrong key the connection is closed"
probe "status"
check 1 '.type == "ERROR" and (.error | test("before STORE_HELLO"))' "request before hello"

note "requests good and bad on one connection"
probe "hello k3y-for-test c3" \
	"put 1 1 p 0 0 hello-chunk" \
	"put 1 1 p 1 0 hello 0000000000000000" \
	"get 1 1 p 0 1" \
	"put 1 1 ../x 0 0 hi" \
	'req {"op":"get","req":77}' \
	'req {"op":"zap","req":78}' \
	'req {"op":"put","req":79,"job":1,"epoch":1,"part":"p","idx":5,"len":2,"hash":"0000000000000000","slot":9}' \
	'req {"op":"put","req":80,"job":1,"epoch":1,"part":"p","idx":5,"len":5000000,"hash":"0000000000000000","slot":0}' \
	"get 1 1 p 7 0" \
	"manifest 1 0 0" \
	'commit 1 1 0 {"streams":["p"]}' \
	"manifest 1 0 2" \
	"list 0 3" \
	"abort 1 1" \
	"put 1 2 p 0 0 second-epoch" \
	"abort 1 2" \
	"status" \
	'frame 50 {"key":"k3y-for-test","client":"again"}'
check 1 '.type == "STORE_WELCOME" and .server == "s0" and .slots == 4 and .slot_size == 4194304' "welcome"
check 2 '.type == "STORE_REP" and .req == 1 and (has("error") | not)' "put"
check 3 '.error == "checksum mismatch"' "put with a wrong hash"
check 4 '.data == "hello-chunk" and .verified == true and .len == 11' "get"
check 5 '.error == "bad part name"' "put ../x"
check 6 '.req == 77 and (.error | length > 0)' "a request breaking its schema"
check 7 '.req == 78 and (.error | length > 0)' "an unknown operation"
check 8 '.req == 79 and .error == "no such slot"' "slot 9 of 4"
check 9 '.req == 80 and .error == "larger than the slot"' "a put larger than the slot"
check 10 '.error == "no such chunk"' "get of a missing chunk"
check 11 '.error == "no committed checkpoint"' "manifest before commit"
check 12 '(has("error") | not)' "commit"
check 13 '.epoch == 1 and .data == "{\"streams\":[\"p\"]}" and .verified' "manifest after commit"
check 14 '(.data | fromjson | .epochs[0] | .job == 1 and .epoch == 1 and .committed and .chunks[0].part == "p" and .chunks[0].len == 11)' "list"
check 15 '.error == "committed"' "abort of a committed epoch"
check 16 '(has("error") | not)' "put into epoch 2"
check 17 '(has("error") | not)' "abort of an uncommitted epoch"
check 18 '.chunks == 1 and .manifests == 1 and .corrupt == 0 and .total > 0 and .free > 0' "status"
check 19 '.type == "ERROR"' "a second STORE_HELLO"
[ -f "$S/objects/1/1/p.0" ] && [ -f "$S/objects/1/1/MANIFEST" ] && [ ! -e "$S/objects/1/2" ] ||
	fail "layout: $(find "$S/objects")"

note "a corrupt chunk file is found"
printf 'X' | dd of="$S/objects/1/1/p.0" bs=1 seek=70 conv=notrunc status=none
probe "hello k3y-for-test c4" "get 1 1 p 0 0" "status"
check 2 '.error == "corrupt"' "get of a corrupt chunk"
check 3 '.corrupt == 1' "status after corruption"
grep -q "1/1/p.0 is corrupt" "$LOG" || fail "the corrupt chunk is not logged"

note "GC: an abandoned epoch goes, one whose writer is connected stays"
mkfifo "$TEST_DIR/writer.in"
timeout 120 "$PROBE" "$ADDR" --timeout 30000 <"$TEST_DIR/writer.in" >"$TEST_DIR/writer.out" &
WRITER_PID=$!
exec 7>"$TEST_DIR/writer.in"
printf '%s\n' "hello k3y-for-test writer" "put 3 1 w 0 0 being-written" >&7
probe "hello k3y-for-test quitter" "put 2 1 q 0 0 abandoned"
check 2 '(has("error") | not)' "put of the abandoned epoch"
for i in $(seq 300); do [ -e "$S/objects/2" ] || break; sleep 0.1; done
[ -e "$S/objects/2" ] && fail "the abandoned epoch 2/1 is still there after 30 s (gc_grace 3 s)"
# by now the writer's chunk is older than gc_grace too
[ -f "$S/objects/3/1/w.0" ] || fail "GC removed 3/1 while its writer is connected"
grep -q '"req": *1' "$TEST_DIR/writer.out" || fail "the writer's put: $(cat "$TEST_DIR/writer.out")"
exec 7>&-
wait "$WRITER_PID"
WRITER_PID=
for i in $(seq 300); do [ -e "$S/objects/3" ] || break; sleep 0.1; done
[ -e "$S/objects/3" ] && fail "3/1 is still there 30 s after its writer left"
[ -f "$S/objects/1/1/MANIFEST" ] || fail "GC removed a committed epoch"

note "registration with the controller"
for i in $(seq 300); do [ "$(grep -c '^conn 3 type 55' "$CTL_LOG")" -ge 1 ] && break; sleep 0.1; done
grep -q '^conn 3 type 55' "$CTL_LOG" || fail "no STORE_STATUS after re-registering: $(cat "$CTL_LOG")"
grep -q "refused us: name s0 is held" "$LOG" || fail "the controller's ERROR is not logged"
grep '^conn 2 type 54' "$CTL_LOG" | sed 's/^conn 2 type 54 //' | jq -e --arg a "$ADDR" --arg d "$(realpath "$S")" \
	'.name == "s0" and .key == "k3y-for-test" and .addr == $a and .provider == "tcp" and .dir == $d and .pid > 0' \
	>/dev/null || fail "STORE_REGISTER: $(grep '^conn 2 type 54' "$CTL_LOG")"
# the figures after GC took 3/1: a STORE_STATUS sent since then says so
status_ok() { grep '^conn 3 type 55' "$CTL_LOG" | tail -1 | sed 's/^conn 3 type 55 //' |
	jq -e '.chunks == 1 and .manifests == 1 and .corrupt == 1 and .used > 0 and .total > 0 and
	       .clients == 0 and (.health | test("corrupt"))' >/dev/null; }
for i in $(seq 300); do status_ok && break; sleep 0.1; done
status_ok || fail "STORE_STATUS: $(grep '^conn 3 type 55' "$CTL_LOG" | tail -1)"
grep -q "lost controller" "$LOG" || fail "the dropped link is not logged"

note "empty and short chunks, a manifest with a wrong checksum, chunk files cut or grown on disk"
# (after the registration checks: their STORE_STATUS figures stay as they were)
probe "hello k3y-for-test c5" \
	'req {"op":"put","req":60,"job":1,"epoch":1,"part":"q","idx":0,"len":0,"hash":"2d06800538d394c2","slot":0}' \
	"put 1 1 q 0 0 hello-chunk" \
	'req {"op":"put","req":61,"job":1,"epoch":1,"part":"q","idx":1,"len":5,"hash":"1784f96b76de3be5","slot":0}' \
	'req {"op":"commit","req":62,"job":1,"epoch":1,"len":11,"hash":"0000000000000000","slot":0}' \
	"put 1 1 q 2 1 another-chunk" \
	"status"
check 2 '.req == 60 and .error == "empty chunk"' "an empty chunk"
check 3 '(has("error") | not)' "put q.0"
# slot 0 holds the 11 bytes of hello-chunk; a put of 5 of them with their hash
check 4 '.req == 61 and .error == "checksum mismatch"' "a chunk shorter than its hash says"
check 5 '.req == 62 and .error == "checksum mismatch"' "a commit with a wrong checksum"
check 7 '.corrupt == 1' "status after the bad requests"
[ -e "$S/objects/1/1/q.1" ] && fail "the short chunk was stored"
[ "$(cat "$S/objects/1/1/MANIFEST")" = '{"streams":["p"]}' ] ||
	fail "the manifest changed after a commit with a wrong checksum: $(cat "$S/objects/1/1/MANIFEST")"
head -c $((4 << 20)) /dev/zero >>"$S/objects/1/1/q.0"
truncate -s 10 "$S/objects/1/1/q.2"
probe "hello k3y-for-test c6" "get 1 1 q 0 0" "get 1 1 q 2 0" "status"
check 2 '.error == "larger than the slot"' "a chunk file grown past the slot"
check 3 '.error == "corrupt"' "a chunk file shorter than its header"
check 4 '.corrupt == 2' "status after a cut chunk file"

note "strangers: no hello within 10 s closes the connection; at most max_strangers (8 here) at once"
OUT=$( (sleep 11.5; echo status) | timeout 60 "$PROBE" "$ADDR" --timeout 5000) ||
	fail "hec-storeprobe failed: $OUT"
check 1 '.closed or (.type == "ERROR" and (.error | test("no hello within 10 s")))' \
	"a connection silent for 11 s"
pids=()
for i in $(seq 12); do
	(sleep 6; echo status) | timeout 60 "$PROBE" "$ADDR" --timeout 5000 >"$TEST_DIR/stranger.$i" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}" # (not the stand-in controller)
refused=$(grep -l "too many connections that have not said hello" "$TEST_DIR"/stranger.* | wc -l)
echo "12 strangers at once: $refused refused"
[ "$refused" -ge 4 ] || fail "only $refused of 12 strangers were refused (8 may stay): $(cat "$TEST_DIR/stranger.12")"
probe "hello k3y-for-test c9" "status"
check 2 '.type == "STORE_REP" and .error == null' "a client saying hello after the strangers"
[ "$(grep -c "such not logged before" "$LOG")" -le 12 ] || fail "the refusals flooded the log"

note "a client's slots are zeroed before the next client gets them"
probe "hello k3y-for-test c10" "put 1 9 p 0 2 secret-of-c10" "peek 2" "abort 1 9"
check 3 '.nonzero == 13 and .data == "secret-of-c10"' "c10 reading back its own slot"
rkey10=$(sed -n 1p <<<"$OUT" | jq -r .rkey)
for i in $(seq 100); do grep -q "client c10 .* gone" "$LOG" && break; sleep 0.1; done
grep -q "client c10 .* gone" "$LOG" || fail "hecstored did not see c10 leave"
probe "hello k3y-for-test c11" "peek 0" "peek 1" "peek 2" "peek 3"
grep -q "client c11 .* connected: .* (kept, zeroed)" "$LOG" ||
	fail "c11 did not get a kept region: $(grep "client c11" "$LOG")"
for n in 2 3 4 5; do check $n '.nonzero == 0' "c11's slot $((n - 2)) after c10 left"; done
check 1 ".rkey != \"$rkey10\"" "c11's key to the region c10 had"

note "SIGTERM: exit 0"
kill -TERM "$SPID"
wait "$SPID"
rc=$?
SPID=
[ "$rc" = 0 ] || fail "hecstored exited $rc after SIGTERM"
[ -e "$S/hecstored.addr" ] && fail "hecstored.addr left after exit"
if [ ${#VG[@]} -gt 0 ]; then
	for f in "$TEST_DIR"/vg.*.log; do
		grep -q "ERROR SUMMARY: 0 errors" "$f" || { cat "$f" >&2; fail "valgrind: $f"; }
	done
fi
note "ok"
exit 0
