#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Storage servers in the embedded cluster (doc/storage.md): `cluster up
# --storage 3` starts s0..s2, the controller lists them up with their space;
# a wrong key, a name a live server holds, and messages on the wrong kind of
# connection are refused while the controller goes on; a killed server is
# shown down, comes back when restarted; `cluster down` stops them all.
. "$HEC_SRCDIR/tests/integration/lib.sh"

SENDRAW="$HEC_BUILDDIR/tests/tools/hec-sendraw"
# raw ADDR PATTERN TYPE JSON [TYPE JSON]...: send those frames on one
# connection (frames hold NUL bytes: straight into the pipe), expect PATTERN
# in the replies
raw() {
	local addr=$1 pat=$2 out; shift 2
	out=$(while [ $# -ge 2 ]; do "$SENDRAW" --frame "$1" "$2"; shift 2; done |
		"$SENDRAW" "tcp:$addr" --wait 2000) || fail "hec-sendraw tcp:$addr failed"
	grep -qE -- "$pat" <<<"$out" || fail "reply '$out', expected /$pat/"
}

cluster_up 1 --storage 3
for s in s0 s1 s2; do
	[ -f "$HEC_DIR/store/$s/hecstored.conf" ] || fail "no config for $s"
	[ -d "$HEC_DIR/store/$s/data" ] || fail "no data directory for $s"
	[ -n "$(procs_with "$HEC_DIR/store/$s/hecstored.conf")" ] || fail "no hecstored for $s"
done

# Up, over tcp (no RDMA device serves 127.0.0.1), with space once the first
# STATUS came (one heartbeat after registering).
for i in $(seq 50); do
	js=$("$HEC" storage --json) || fail "hec storage --json failed"
	[ "$(jq '[.servers[] | select(.free > 0)] | length' <<<"$js")" = 3 ] && break
	sleep 0.1
done
[ "$(jq '.servers | length' <<<"$js")" = 3 ] || fail "expected 3 servers: $js"
[ "$(jq -r '[.servers[].name] | join(",")' <<<"$js")" = s0,s1,s2 ] || fail "servers not s0..s2 in order: $js"
[ "$(jq '[.servers[] | select(.state == "up" and .provider == "tcp")] | length' <<<"$js")" = 3 ] ||
	fail "not all up over tcp: $js"
[ "$(jq '[.servers[] | select(.free > 0 and .total >= .free)] | length' <<<"$js")" = 3 ] ||
	fail "free space not reported: $js"
[ "$(jq -r '.servers[] | select(.name == "s1") | .dir' <<<"$js")" = "$(realpath "$HEC_DIR")/store/s1/data" ] ||
	fail "s1's directory: $js"
"$HEC" storage | grep -qE '^s2 +up +127\.0\.0\.1:[0-9]+ +tcp ' || fail "table: $("$HEC" storage)"
"$HEC" cluster status | grep -q "storage: 3 up, 3 total" || fail "cluster status: $("$HEC" cluster status)"

addr=$(cat "$HEC_DIR/state/ctl.addr")
key=$(cat "$HEC_DIR/cluster.key")
reg() { echo "{\"name\":\"$1\",\"key\":\"$2\",\"addr\":\"127.0.0.1:9\",\"provider\":\"tcp\",\"dir\":\"/nowhere\",\"pid\":1}"; }
status='{"total":100,"free":50,"used":50,"chunks":0,"manifests":0,"corrupt":0,"repaired":0,"clients":0}'

note "refused: a wrong key, a name a live server holds"
raw "$addr" '^ERROR .*storage server x9: wrong cluster key' 54 "$(reg x9 wrong)"
raw "$addr" '^ERROR .*storage server s1 is already registered from' 54 "$(reg s1 "$key")"
note "refused: STORE_STATUS before STORE_REGISTER, or from a node's connection"
raw "$addr" '^ERROR .*send STORE_REGISTER first' 55 "$status"
node="{\"node\":\"intruder\",\"key\":\"$key\",\"hostname\":\"x\",\"addr\":\"127.0.0.1:9\",\"cpus\":\"0\",\"topology\":{\"cores\":1,\"pus\":1,\"numa_nodes\":1,\"memory_mb\":0},\"partitions\":[],\"exits\":[],\"pid\":1}"
raw "$addr" '^ERROR .*node intruder may not send STORE_STATUS' 10 "$node" 55 "$status"
note "refused: a node's message from a storage server's connection"
raw "$addr" '^ERROR .*storage server x8 may not send HEARTBEAT' 54 "$(reg x8 "$key")" 12 '{}'
[ "$(store_field x8 state)" = down ] || fail "x8 is not down after its refusal: $("$HEC" storage --json)"
[ -z "$(store_field x9 state)" ] || fail "x9 was listed though refused"
# the controller goes on, and the real servers are untouched
for s in s0 s1 s2; do [ "$(store_field $s state)" = up ] || fail "$s not up after the refusals"; done

note "kill -9 s1: down, then restarted by hand: up again"
kill -9 "$(daemon_pid s1)"
wait_store s1 down 5
"$HEC" storage | grep -qE '^s1 +down ' || fail "table does not show s1 down: $("$HEC" storage)"
"$HEC" cluster status | grep -q "storage: 2 up, 4 total" || fail "cluster status: $("$HEC" cluster status)"
start_store s1
wait_store s1 up 15
[ "$(store_field s1 pid)" = "$(daemon_pid s1)" ] || fail "s1's pid is not the restarted one"

"$HEC" cluster down >/dev/null || fail "cluster down failed"
[ -z "$(procs_with "$TEST_DIR")" ] || fail "processes left after cluster down: $(procs_with "$TEST_DIR" | tr '\n' ' ')"
pgrep -f -- "hecstored -f $TEST_DIR" >/dev/null && fail "a hecstored survived cluster down"
exit 0
