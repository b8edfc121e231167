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
#   ib_write_bw_gbits SIZE ITERS    prints vm1 -> vm0 RDMA WRITE Gbit/s
#   rdma_consoles               both guests' consoles, for the log

LIBDIR=/usr/lib/x86_64-linux-gnu
# What the verbs path needs in a guest beyond what ldd finds: the rxe
# provider (dlopened by libibverbs, found through its .driver file), and
# libgcc_s, which glibc dlopens at pthread_exit (librdmacm's threads) and
# aborts without.  Packages named for rdma_checks.
RDMA_FILES="/usr/bin/rdma:iproute2 /usr/bin/ibv_devices:ibverbs-utils
/usr/bin/ibv_devinfo:ibverbs-utils /usr/bin/ib_write_bw:perftest
/usr/bin/fi_info:libfabric-bin $LIBDIR/libibverbs/librxe-rdmav34.so:ibverbs-providers
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
	timeout "$RDMA_T" "$GUESTCTL" --timeout 90 "$VM_DIR/$g.sock" run -- "$@" </dev/null
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
# in vm1; prints the average Gbit/s.  The server's output goes to
# $VM_DIR/ibw.server.
ib_write_bw_gbits() {
	grun vm0 ib_write_bw -d rxe0 -x "$GID_vm0" -s "$1" -n "$2" -F --report_gbits \
		>"$VM_DIR/ibw.server" 2>&1 &
	srv=$!
	# the server may not listen yet: the client's TCP connect then fails at once
	i=0
	until out=$(grun vm1 ib_write_bw -d rxe0 -x "$GID_vm1" -s "$1" -n "$2" -F --report_gbits 10.77.0.1 2>&1); do
		i=$((i + 1))
		if [ "$i" -ge 20 ] || ! kill -0 "$srv" 2>/dev/null; then
			echo "$out" >&2
			cat "$VM_DIR/ibw.server" >&2
			return 1
		fi
		sleep 1
	done
	wait "$srv" || {
		echo "$out" >&2
		cat "$VM_DIR/ibw.server" >&2
		return 1
	}
	echo "$out" >&2
	echo "$out" | awk -v s="$1" '$1 == s && NF >= 5 { print $4; f = 1 } END { exit !f }'
}

rdma_consoles() {
	for f in "$VM_DIR"/*.console; do
		[ -f "$f" ] || continue
		echo "--- console of ${f##*/}"
		cat "$f"
	done
}
