#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The agent's side of a restart from a checkpoint (LAUNCH's restore, START
# restored, RESUME; doc/design.md "Checkpoint and restart"), state then
# verify, on a real guest:
# - a 1-node vm job counts; `hec ckpt --wait` commits two checkpoints of
#   it, E1 and E2, on the cluster's 2 storage servers; one chunk of E2 is
#   then corrupted on both servers; the job is cancelled;
# - a stand-in controller (the agent port of the stopped hecctld) sends the
#   agent LAUNCHes with restore:
#   * the wrong guest image: LAUNCHED with the error, no QEMU;
#   * E2: hec-store finds no good copy of the chunk: LAUNCHED with
#     hec-store's line, and no QEMU left running;
#   * E1: LAUNCHED once loaded; the guest stays paused; an EPOCH that
#     starts 8 s later holds the partition frozen; START restored, RESUME
#     at +1 s: nothing runs until the epoch starts, then the count goes on
#     from E1's instant in the same output file (appended), to the end, and
#     JOB_EXIT reports exit 0.
. "$HEC_SRCDIR/tests/integration/lib.sh"

need_guests
command -v python3 >/dev/null || skip "python3 not installed (the stand-in controller)"
command -v jq >/dev/null || skip "jq not installed"
STORE="$HEC_BUILDDIR/hec-store"

cluster_up 1 --storage 2
cd "$TEST_DIR"

LAST=120
cat >count.sh <<EOF
#!/bin/sh
#HEC -N 1 -t 8:00 --partition vm --vcpus 1 --mem 256M
i=0
while [ \$i -lt $LAST ]; do i=\$((i + 1)); echo "tick \$i"; sleep 0.2; done
echo done
EOF

ticks() { sed -n 's/^tick //p' "$1" 2>/dev/null; }
# our job's QEMU (other clusters on this host may have a job of that id too)
qemu_pid() { pgrep -f -- "-name hec-job$1-node0 .*$TEST_DIR/" | head -1; }
last_tick() { ticks "$1" | tail -n 1; }
wait_tick() {
	local i
	for i in $(seq 1 600); do
		[ "$(last_tick "$OUT")" -ge "$1" ] 2>/dev/null && return 0
		sleep 0.2
	done
	fail "the job did not reach tick $1 (last: $(last_tick "$OUT"))"
}

j=$(submit count.sh)
wait_state "$j" RUNNING 60
OUT=$(job_field "$j" output)
wait_tick 3
qpid=$(qemu_pid "$j")
[ -n "$qpid" ] || fail "no QEMU of job $j"
initrd=$(tr '\0' '\n' <"/proc/$qpid/cmdline" | sed -n '/^-initrd$/{n;p}')
IMAGE=$(basename "$(dirname "$initrd")")
echo "guest image $IMAGE ($initrd)"

note "two checkpoints by hec ckpt --wait; the second's chunk 1 corrupted"
dir=$(find "$HEC_DIR" -type d -name "job.$j" | head -1)
before=$(last_tick "$OUT")
E1=$("$HEC" ckpt --wait "$j") || fail "hec ckpt --wait $j failed"
after=$(last_tick "$OUT")
E2=$("$HEC" ckpt --wait "$j") || fail "the second hec ckpt --wait $j failed"
[[ $E1 =~ ^[0-9]+$ ]] && [[ $E2 =~ ^[0-9]+$ ]] || fail "hec ckpt --wait printed '$E1' and '$E2'"
SERVERS=$("$HEC" storage --json | jq -r '[.servers[] | "\(.name)=\(.addr)"] | join(",")')
"$STORE" --servers "$SERVERS" --key-file "$HEC_DIR/cluster.key" --json latest "$j" >latest.json ||
	fail "hec-store latest $j failed"
jq -e ".epoch == $E2 and .meta.parts[0].image == \"$IMAGE\"" latest.json >/dev/null ||
	fail "checkpoint $E2's manifest does not name the guest image $IMAGE: $(jq -c . latest.json)"
echo "checkpoint $E1 between ticks $before and $after, then $E2: $("$HEC" ckpts "$j" | tr '\n' ';')"
# chunk 1 of E2 flipped on both servers (one byte of its data)
n=0
for f in $(find "$HEC_DIR/store" -path "*/objects/$j/$E2/p0.1"); do
	b=$(od -An -tu1 -j 1064 -N 1 "$f" | tr -d ' ')
	printf "\\$(printf %03o $(((b + 1) % 256)))" | dd of="$f" bs=1 seek=1064 conv=notrunc status=none
	n=$((n + 1))
done
[ "$n" = 2 ] || fail "chunk 1 of $E2 found on $n servers, not 2"
wait_tick $((after + 5))
"$HEC" cancel "$j" || fail "hec cancel $j"
wait_state "$j" CANCELLED 60
for i in $(seq 100); do [ -d "$dir" ] || break; sleep 0.2; done
[ -d "$dir" ] && fail "job $j's directory is still there after its cancel"
high=$(last_tick "$OUT")
lines=$(wc -l <"$OUT")
echo "output: $lines lines, up to tick $high"

note "the controller stops; a stand-in takes its agent port"
CTL_ADDR=$(sed -n 's/^controller *= *//p' "$HEC_DIR/node0.conf")
kill "$(daemon_pid hecctld)"
for i in $(seq 100); do kill -0 "$(daemon_pid hecctld)" 2>/dev/null || break; sleep 0.1; done
cat >scenario.json <<EOF
{"job": $j, "e1": $E1, "e2": $E2, "servers": "$SERVERS", "image": "$IMAGE", "output": "$OUT", "cwd": "$TEST_DIR",
 "script": $(jq -Rs . <count.sh), "events": "$TEST_DIR/events"}
EOF
cat >fakectl.py <<'EOF'
import json, os, socket, struct, sys, threading, time
addr, scen = sys.argv[1], json.load(open(sys.argv[2]))
host, port = addr.rsplit(":", 1)
J = scen["job"]
lock = threading.Lock()
def event(kind, **kw):
    kw["event"] = kind
    kw["at"] = time.time()
    with lock, open(scen["events"], "a") as f:
        f.write(json.dumps(kw) + "\n")
def send(c, t, body):
    p = json.dumps(body).encode()
    c.sendall(b"HC" + bytes([1, t]) + struct.pack(">I", len(p)) + p)
def recv(c):
    def exact(n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d: raise EOFError
            b += d
        return b
    h = exact(8)
    n = struct.unpack(">I", h[4:])[0]
    return h[3], json.loads(exact(n) or b"{}")
def now(): return time.clock_gettime_ns(time.CLOCK_REALTIME)
def store(c):   # storage servers: registered, then heard and ignored
    try:
        while True:
            t, b = recv(c)
            if t == 54: send(c, 11, {"heartbeat_ms": 1000})
    except (EOFError, OSError):
        pass
def agent(c, t, reg):
    node = {"name": reg["node"], "addr": reg["addr"], "ranks": 1}
    def wait(want, secs):
        end = time.time() + secs
        while time.time() < end:
            t, b = recv(c)
            if t == 40: send(c, 41, {"t1": b["t1"], "t2": now(), "t3": now()})
            elif t == want and b.get("job") == J: return b
        raise SystemExit("no message %d within %d s" % (want, secs))
    def launch(epoch, image):
        send(c, 13, {"job": J, "key": "k" * 40, "uid": 0, "gid": 0, "nodes": [node],
                     "partition": "vm", "vcpus": 1, "mem_mb": 256, "guest_key": "ab" * 16,
                     "restore": {"epoch": epoch, "part": "p0", "servers": scen["servers"],
                                 "replicas": 2, "image": image}})
        return wait(14, 300)
    def kill():
        send(c, 18, {"job": J})
        wait(19, 60)
    def gate(name):   # the test looks at the node before the stand-in goes on
        end = time.time() + 300
        while not os.path.exists(os.path.join(scen["cwd"], "go." + name)):
            if time.time() > end: raise SystemExit("no go.%s within 300 s" % name)
            time.sleep(0.1)
    send(c, 11, {"heartbeat_ms": 1000})
    for e in reg.get("exits", []): send(c, 17, {"job": e["job"]})
    b = launch(scen["e1"], "0" * 32)
    event("launched_image", error=b.get("error"))
    gate("image")
    kill()
    b = launch(scen["e2"], scen["image"])
    event("launched_corrupt", error=b.get("error"))
    gate("corrupt")
    kill()
    b = launch(scen["e1"], scen["image"])
    event("launched", error=b.get("error"))
    if b.get("error"): return
    start, resume = now() + 8 * 10**9, now() + 10**9
    send(c, 42, {"epoch": 1, "start": start, "slot_ns": 100 * 10**6, "nslots": 1,
                 "slots": [J], "frozen": []})
    send(c, 15, {"job": J, "ntasks": 1, "cwd": scen["cwd"], "env": [], "script": scen["script"],
                 "output": scen["output"], "restored": True})
    send(c, 66, {"job": J, "t": resume})
    event("resume_sent", resume=resume / 1e9, epoch_start=start / 1e9)
    b = wait(16, 300)
    event("exit", exit=b["exit"], signal=b["signal"], error=b.get("error"))
    send(c, 17, {"job": J})
    kill()
    event("done")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(8)
while True:
    c, _ = s.accept()
    t, b = recv(c)
    if t == 10:
        threading.Thread(target=lambda: (agent(c, t, b), event("agent_end")), daemon=True).start()
    else:
        if t == 54: send(c, 11, {"heartbeat_ms": 1000})
        threading.Thread(target=store, args=(c,), daemon=True).start()
EOF
python3 fakectl.py "$CTL_ADDR" scenario.json >fakectl.log 2>&1 &
CTL_PID=$!
test_cleanup() {
	kill "$CTL_PID" 2>/dev/null
	wait "$CTL_PID" 2>/dev/null
	# the real controller back, for cluster down
	kill -0 "$(daemon_pid hecctld)" 2>/dev/null || start_daemon hecctld "$HECCTLD"
	sleep 1
	return 0
}
# ev KIND: the event's JSON once the stand-in wrote it (300 s at most)
ev() {
	local i
	for i in $(seq 1500); do
		grep "\"event\": \"$1\"" events 2>/dev/null | tail -n 1 | grep . && return 0
		kill -0 "$CTL_PID" 2>/dev/null || fail "the stand-in controller ended: $(cat fakectl.log)"
		sleep 0.2
	done
	fail "no $1 from the stand-in controller: $(cat events 2>/dev/null)"
}
no_qemu() {
	local i
	for i in $(seq 50); do [ -z "$(qemu_pid "$j")" ] && return 0; sleep 0.2; done
	fail "QEMU of job $j still runs after $1"
}

note "restore into another guest image: refused with the reason, no QEMU"
e=$(ev launched_image)
echo "$e"
jq -e '.error | test("node0: the guest image differs from the checkpoint.s: '"$IMAGE"' here, 0{32} in the checkpoint")' <<<"$e" >/dev/null ||
	fail "LAUNCHED for another image: $e"
no_qemu "a refused image"
touch go.image

note "restore of the corrupted $E2: hec-store's reason, no QEMU left"
e=$(ev launched_corrupt)
echo "$e"
jq -e '.error | test("^node0: the checkpoint.s stream: hec-store: get '"$j/$E2"'/p0 chunk 1: no good copy: ") and test("s0: ") and test("s1: ")' <<<"$e" >/dev/null ||
	fail "LAUNCHED for the corrupted epoch: $e"
no_qemu "a corrupted stream"
[ "$(wc -l <"$OUT")" = "$lines" ] || fail "the output grew from a stream that failed its hash"
touch go.corrupt

note "restore of $E1: loaded, paused; frozen until the epoch starts; then runs on"
e=$(ev launched)
jq -e '.error == null' <<<"$e" >/dev/null || fail "LAUNCHED with restore failed: $e"
[ -n "$(qemu_pid "$j")" ] || fail "no QEMU after LAUNCHED"
e=$(ev resume_sent)
resume=$(jq -r .resume <<<"$e")
start=$(jq -r .epoch_start <<<"$e")
# past the RESUME instant, before the epoch's start: nothing runs yet
while [ "$(date +%s.%N)" \< "$(jq -n "$resume + 1")" ]; do sleep 0.1; done
frozen=$(find /sys/fs/cgroup -path "*/hec/$(cluster_name)/node0/job.$j" -type d 2>/dev/null |
	while read -r g; do cat "$g/freezer.state" "$g/cgroup.freeze" 2>/dev/null; done | sort -u | tr '\n' ' ')
[ "$(date +%s.%N)" \< "$start" ] || fail "the check came after the epoch's start: too late to tell (host overloaded?)"
echo "job $j's partition between RESUME and the epoch's start: $frozen"
grep -qE 'FROZEN|^1 | 1 ' <<<" $frozen" || fail "the restored partition is not frozen before its epoch starts: $frozen"
[ "$(wc -l <"$OUT")" = "$lines" ] || fail "the restored guest wrote before its epoch started"
e=$(ev exit)
echo "$e"
jq -e '.exit == 0 and .signal == 0 and .error == null' <<<"$e" >/dev/null ||
	fail "the restored batch step did not end well: $e; $(grep -E 'restore|resum|attach' "$HEC_DIR/log/node0.log" | tail -5)"
ev done >/dev/null
back=$(sed -n "$((lines + 1)),\$p" "$OUT")
first=$(sed -n 's/^tick //p' <<<"$back" | head -n 1)
echo "output: ticks up to $high before, then from $first on after the restart; last line: $(tail -n 1 "$OUT")"
[ "$first" -ge "$before" ] && [ "$first" -le $((after + 1)) ] ||
	fail "the restored count went on from $first, not from checkpoint $E1's ($before..$((after + 1)))"
sed -n 's/^tick //p' <<<"$back" | awk -v f="$first" -v last=$LAST 'NR == 1 && $1 != f { exit 1 } NR > 1 && $1 != p + 1 { exit 1 } { p = $1 } END { exit p != last }' ||
	fail "after the restart the count did not run on by one to $LAST: $(tr '\n' ' ' <<<"$back" | head -c 400)"
[ "$(tail -n 1 "$OUT")" = done ] || fail "the output's last line is not 'done'"
grep -q "restored guest resumed; hec-guest answers (the batch step runs)" "$HEC_DIR/log/node0.log" ||
	fail "no PONG from the restored guest in node0's log"
grep -E "job $j: (restarting|guest loaded|partition ready: its guest|LAUNCH failed|restored guest|batch step (of the checkpoint|in the guest ended))" "$HEC_DIR/log/node0.log"
note "job $j: restarted from its checkpoint, its output went on to the end"
