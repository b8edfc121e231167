# SPDX-License-Identifier: BSD-3-Clause
# Two QEMU guests with Soft-RoCE (rdma_rxe) on a private link: real
# librdmacm/libibverbs, and libfabric's verbs provider on top, on a host
# without any RDMA device.  Shared by tests/vm/storage_verbs.sh and
# bench/storage-verbs.  Sourced after tests/vm/lib.sh.
#
#   rdma_checks                 skips (77) when the host lacks a piece
#   rdma_image [FILE]...        the vm image plus verbs userspace, and FILEs
#   rdma_guests                 boots vm0 (10.77.0.1) and vm1 (10.77.0.2)
#   rdma_up NAME                rxe0 on eth0, ACTIVE; sets GID_<NAME>
#   grun NAME CMD...            runs CMD in guest NAME (echoed on stderr)
#   ib_write_bw_gbits SIZE ITERS    vm1 -> vm0 RDMA WRITE: IBW_GBITS
#   fabtest_gbits, store_start, store_round: hec's own (see each)
#   rdma_consoles               both guests' consoles, for the log

LIBDIR=/usr/lib/x86_64-linux-gnu
# What the verbs path needs in a guest beyond what ldd finds: the rxe
# provider (dlopened by libibverbs, found through its .driver file), and
# libgcc_s, which glibc dlopens at pthread_exit (librdmacm's threads) and
# aborts without.  Packages named for rdma_checks.
RDMA_FILES="/usr/bin/rdma:iproute2 /usr/bin/ibv_devices:ibverbs-utils
/usr/bin/ibv_devinfo:ibverbs-utils /usr/bin/ib_write_bw:perftest
/usr/bin/fi_info:libfabric-bin /usr/bin/fi_pingpong:libfabric-bin $LIBDIR/libibverbs/librxe-rdmav34.so:ibverbs-providers
/etc/libibverbs.d/rxe.driver:ibverbs-providers $LIBDIR/libgcc_s.so.1:libgcc-s1"
# Loaded by hec-guest in this order after their dependencies; rdma_rxe asks
# the crypto API for "crc32" at `rdma link add`, which nothing loads
# otherwise ("failed to init crc32 algorithm err:-2").
RDMA_MODULES="rdma_rxe rdma_ucm crc32_generic"
RDMA_T=${RDMA_T:-300}

rdma_checks() {
	vm_checks
	for e in $RDMA_FILES; do
		[ -e "${e%%:*}" ] || skip "no ${e%%:*} (Debian package ${e##*:})"
	done
	k=$(ls /boot/vmlinuz-* | sort -V | tail -n 1)
	for m in $RDMA_MODULES; do
		modprobe -S "${k##*/vmlinuz-}" --show-depends "$m" >/dev/null 2>&1 ||
			skip "kernel ${k##*/vmlinuz-} has no module $m (no Soft-RoCE)"
	done
}

rdma_image() {
	set -- $(for e in $RDMA_FILES; do echo "--add ${e%%:*}"; done) \
		$(for f in "$@"; do echo "--add $f"; done) \
		$(for m in $RDMA_MODULES; do echo "--module $m"; done)
	vm_image "$@"
}

# grun NAME CMD...: CMD's stdout/stderr come back, its status is returned
grun() {
	g=$1
	shift
	echo "+ $g: $*" >&2
	# -k: hec-guestctl relays SIGTERM to the guest and waits for the command.
	# The guest preloads libhec-mpifix into every program, ahead of the
	# sanitizer runtime of an ASan build's hec binaries: ASan must not refuse.
	timeout -k 10 "$RDMA_T" "$GUESTCTL" --timeout 90 "$VM_DIR/$g.sock" run -- \
		env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$@" </dev/null
}

rdma_guests() {
	H=vm0:10.77.0.1,vm1:10.77.0.2
	# 1 vCPU each, as a small node; the link's speed stated, else virtio-net
	# reports it unknown to rxe and the port's rate is a guess
	VM_SMP=1 VM_NIC=speed=10000,duplex=full
	port=$((20000 + $$ % 20000))
	tries=0
	t0=$(date +%s%N)
	until vm_try_start vm0 0 "$H" "socket,id=n0,listen=127.0.0.1:$port"; do
		tries=$((tries + 1))
		[ "$tries" -lt 20 ] || fail "qemu-system-x86_64 did not start vm0 listening on 20 ports (last $port)"
		port=$((20000 + (port - 20000 + 7919) % 40000))
	done
	vm_start vm1 1 "$H" "socket,id=n0,connect=127.0.0.1:$port"
	for g in vm0 vm1; do
		timeout "$RDMA_T" "$GUESTCTL" --timeout 90 "$VM_DIR/$g.sock" hello >/dev/null ||
			fail "no HELLO from $g"
	done
	BOOT_MS=$((($(date +%s%N) - t0) / 1000000))
	echo "both guests up (HELLO) in $BOOT_MS ms"
}

rdma_up() {
	g=$1
	grun "$g" rdma link add rxe0 type rxe netdev eth0 ||
		fail "$g: rdma link add rxe0 type rxe netdev eth0 failed"
	# the port turns ACTIVE once the netdev's carrier is seen
	i=0
	while :; do
		out=$(grun "$g" sh -c 'ibv_devices; ibv_devinfo -d rxe0' 2>&1) || true
		echo "$out" | grep -q 'state:[[:space:]]*PORT_ACTIVE' && break
		i=$((i + 1))
		[ "$i" -lt 20 ] || fail "$g: rxe0 not ACTIVE after 20 tries: $out"
		sleep 0.5
	done
	echo "$out"
	echo "$out" | grep -q '^[[:space:]]*rxe0[[:space:]]' || fail "$g: ibv_devices does not list rxe0"
	# the RoCEv2 GID of the IPv4 address (::ffff:a.b.c.d) is what perftest's -x wants
	gid=$(grun "$g" sh -c 'cd /sys/class/infiniband/rxe0/ports/1
		for f in gids/*; do i=${f#gids/}
			t=$(cat gid_attrs/types/$i 2>/dev/null) || continue
			case "$(cat $f) $t" in "0000:0000:0000:0000:0000:ffff:"*" RoCE v2") echo $i; exit 0 ;; esac
		done; exit 1') || fail "$g: no IPv4 RoCEv2 GID on rxe0"
	eval "GID_$g=$gid"
	echo "$g: rxe0 ACTIVE, IPv4 RoCEv2 GID index $gid"
}

# ib_write_bw_gbits SIZE ITERS: perftest's RDMA WRITE, server in vm0, client
# in vm1; sets IBW_GBITS to the average Gbit/s.  It busy-polls its CQ (its
# -e, sleeping on CQ events, is refused for WRITE), which on a 1-vCPU guest
# competes with rxe's kernel work; hec's fabric layer sleeps on its wait fds.  (Functions here fail() the
# test themselves: none prints a result, so none runs in a $(...) subshell,
# where fail would end only the subshell.)
ib_write_bw_gbits() {
	gserve vm0 ibw ib_write_bw -d rxe0 -x "$GID_vm0" -s "$1" -n "$2" -F --report_gbits
	# the server may not listen yet: the client's TCP connect then fails at once
	i=0
	until out=$(grun vm1 ib_write_bw -d rxe0 -x "$GID_vm1" -s "$1" -n "$2" -F --report_gbits 10.77.0.1 2>&1); do
		i=$((i + 1))
		echo "$out"
		if [ "$i" -ge 20 ] || ! kill -0 "$SERVE_ibw" 2>/dev/null; then
			gstop vm0 ibw || true
			fail "ib_write_bw client in vm1 failed"
		fi
		sleep 1
	done
	echo "$out"
	gwait ibw || fail "ib_write_bw server in vm0 failed"
	IBW_GBITS=$(echo "$out" | awk -v s="$1" '$1 == s && NF >= 5 { print $4 }')
	[ -n "$IBW_GBITS" ] || fail "ib_write_bw printed no bandwidth"
	echo "ib_write_bw: $IBW_GBITS Gbit/s"
}

rdma_consoles() {
	for f in "$VM_DIR"/*.console; do
		[ -f "$f" ] || continue
		g=${f##*/}
		g=${g%.console}
		echo "--- console of $g"
		cat "$f"
		# the kernel's word on rxe ("quiet" keeps it off the console); briefly,
		# as a channel still taken by a background command never answers
		echo "--- kernel messages of $g about rdma (dmesg)"
		RDMA_T=15 grun "$g" sh -c 'dmesg | grep -i "rxe\|rdma\|infiniband\|ib_"' 2>&1 || true
	done
}

# gserve NAME TAG CMD...: CMD in guest NAME in the background, its output in
# $VM_DIR/TAG.out, its pid in the guest's /tmp/TAG.N.pid (N new each time:
# a stopper never reads an earlier one's).  NAME's channel is taken until
# CMD ends (gstop).
GSERVE_N=0
gserve() {
	g=$1 tag=$2
	shift 2
	GSERVE_N=$((GSERVE_N + 1))
	# emptied here, not by the background job: a waiter must not read the
	# previous run's "listening" before the job starts
	: >"$VM_DIR/$tag.out"
	grun "$g" sh -c 'echo $$ >/tmp/'"$tag.$GSERVE_N"'.pid; exec "$@"' sh "$@" >>"$VM_DIR/$tag.out" 2>&1 &
	eval "SERVE_$tag=$! SERVE_N_$tag=$GSERVE_N"
}

# gwait TAG: waits for gserve TAG to end; returns its status
gwait() {
	eval "p=\$SERVE_$1"
	rc=0
	wait "$p" || rc=$?
	echo "--- $1 in the background (exit $rc):"
	cat "$VM_DIR/$1.out"
	return $rc
}

# gstop NAME TAG: SIGTERM to gserve TAG in NAME (through the other guest's
# remote shell, NAME's channel being taken), then gwait.  If it still runs
# 20 s later, SIGKILL, and 1 is returned: a program using libfabric without
# a SIGTERM handler of its own can hang in the one a provider installs.
gstop() {
	o=vm1
	[ "$1" = vm1 ] && o=vm0
	eval "p=\$SERVE_$2 n=\$SERVE_N_$2"
	f=/tmp/$2.$n.pid
	grun "$o" hec-rsh "$1" "i=0; until [ -s $f ] || [ \$i -ge 20 ]; do sleep 0.5; i=\$((i + 1)); done; kill \$(cat $f)" || true
	i=0
	while kill -0 "$p" 2>/dev/null && [ "$i" -lt 40 ]; do
		sleep 0.5
		i=$((i + 1))
	done
	if kill -0 "$p" 2>/dev/null; then
		echo "$2 in $1 outlived SIGTERM by 20 s: SIGKILL"
		grun "$o" hec-rsh "$1" "kill -9 \$(cat $f)" || true
		gwait "$2" || true
		return 1
	fi
	gwait "$2"
}

# fabtest_gbits PROVIDER BYTES BLOCK PORT: hec-fabtest server in vm0, client
# in vm1 (every block checked by the server); fails unless both end well,
# both went over PROVIDER and the server got BYTES; sets FAB_GBITS.
fabtest_gbits() {
	gserve vm0 fab "$FABTEST" server "10.77.0.1:$4" --provider "$1" --timeout 120
	i=0
	until grep -q '^listening ' "$VM_DIR/fab.out"; do
		i=$((i + 1))
		if [ "$i" -ge 120 ] || ! kill -0 "$SERVE_fab" 2>/dev/null; then
			gstop vm0 fab || true
			fail "hec-fabtest server --provider $1 is not listening"
		fi
		sleep 0.5
	done
	rc=0
	out=$(grun vm1 "$FABTEST" client "10.77.0.1:$4" --provider "$1" --bytes "$2" --block "$3" --timeout 120 2>&1) || rc=$?
	echo "$out"
	[ "$rc" = 0 ] || { gstop vm0 fab || true; fail "hec-fabtest client --provider $1 exited $rc"; }
	gwait fab || fail "hec-fabtest server --provider $1 failed"
	grep -q "^listening 10.77.0.1:$4 provider $1\$" "$VM_DIR/fab.out" ||
		fail "hec-fabtest server did not listen with provider $1"
	grep -q "^server: provider $1 bytes $2 bad blocks 0\$" "$VM_DIR/fab.out" ||
		fail "hec-fabtest server did not get $2 good bytes over $1"
	FAB_GBITS=$(echo "$out" | awk -v p="$1" -v b="$2" '$1 == "provider" && $2 == p && $3 == "bytes" && $4 == b &&
		$7 == "seconds" && $9 == "gbit/s" && NF == 10 { printf "%.3f", b * 8 / $8 / 1e9 }')
	[ -n "$FAB_GBITS" ] || fail "hec-fabtest client did not report $2 bytes over $1"
	echo "hec-fabtest $1: $FAB_GBITS Gbit/s"
}

# store_start PROVIDER PORT: hecstored in vm0 (/tmp/s, key /tmp/key), until
# its hecstored.addr says it listens with PROVIDER
store_start() {
	grun vm0 sh -c 'echo hec-verbs-test >/tmp/key' || fail "vm0: cannot write /tmp/key"
	grun vm1 sh -c 'echo hec-verbs-test >/tmp/key' || fail "vm1: cannot write /tmp/key"
	gserve vm0 srv sh -c "rm -rf /tmp/s && mkdir /tmp/s && exec $HECSTORED --dir /tmp/s --listen 10.77.0.1:$2 --provider $1 --key-file /tmp/key"
	i=0
	until addr=$(grun vm1 hec-rsh vm0 'cat /tmp/s/hecstored.addr 2>/dev/null' 2>/dev/null) && [ -n "$addr" ]; do
		i=$((i + 1))
		if [ "$i" -ge 30 ] || ! kill -0 "$SERVE_srv" 2>/dev/null; then
			gstop vm0 srv || true
			fail "hecstored --provider $1 did not write /tmp/s/hecstored.addr"
		fi
		sleep 1
	done
	echo "hecstored.addr: $addr"
	[ "$addr" = "10.77.0.1:$2 $1" ] || fail "hecstored.addr is '$addr', not '10.77.0.1:$2 $1'"
}

# store_round PROVIDER PORT EPOCH: in vm1, put /tmp/in as (1, EPOCH, p0),
# commit, get it back and compare; sets PUT_GBITS and GET_GBITS from
# hec-store's own figures, which must name PROVIDER
store_round() {
	S="--servers s0=10.77.0.1:$2 --provider $1 --replicas 1 --key-file /tmp/key"
	out=$(grun vm1 sh -c "set -e
		$HECSTORE $S put 1 $3 p0 </tmp/in >/tmp/entry
		cat /tmp/entry >&2
		$HECSTORE $S commit 1 $3 </tmp/entry
		$HECSTORE $S get 1 $3 p0 >/tmp/out
		cmp /tmp/in /tmp/out
		rm -f /tmp/out" 2>&1) || { echo "$out"; fail "hec-store put/commit/get/cmp over $1 failed"; }
	echo "$out"
	for op in put get; do
		l=$(echo "$out" | grep "^hec-store: $op ") || fail "hec-store $op printed no figures"
		echo "$l" | grep -q "[ ,]$1\$" || fail "hec-store $op did not go over $1: $l"
		g=$(echo "$l" | awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "bytes") b = $i; else if ($i == "in" && $(i + 2) == "s") s = $(i + 1)
			if (b && s) printf "%.3f", b * 8 / s / 1e9; else exit 1 }') || fail "hec-store $op: no bytes/seconds in '$l'"
		eval "$(echo "$op" | tr a-z A-Z)_GBITS=$g"
	done
}

# store_gbits: store_round, then PUT_GBITS_GET_GBITS="PUT GET"
store_gbits() {
	store_round "$@" || return
	PUT_GBITS_GET_GBITS="$PUT_GBITS $GET_GBITS"
}
