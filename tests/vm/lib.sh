# SPDX-License-Identifier: BSD-3-Clause
# Shared by the vm tests: skip checks, the image, starting and stopping QEMU.
# Sourced; expects HEC_BUILDDIR (set by make check, else ./build).
set -eu
B=${HEC_BUILDDIR:-$(pwd)/build}
GUESTCTL=$B/tests/tools/hec-guestctl
VM_DIR=
VM_PIDS=

skip() {
	echo "SKIP: $*"
	exit 77
}

fail() {
	echo "FAIL: $*"
	for f in "$VM_DIR"/*.console; do
		[ -f "$f" ] || continue
		echo "--- $f (last lines)"
		tail -n 30 "$f"
	done
	exit 1
}

vm_checks() {
	[ "$(id -u)" = 0 ] || skip "needs root (the image is built from /boot and /lib/modules)"
	command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (Debian package qemu-system-x86)"
	ls /boot/vmlinuz-* >/dev/null 2>&1 || skip "no kernel in /boot (Debian package linux-image-amd64)"
	[ -x /bin/busybox ] || skip "no /bin/busybox (Debian package busybox-static)"
	# hec's own build product: missing is a broken build, not a missing tool
	[ -x "$GUESTCTL" ] || fail "$GUESTCTL not built (make check builds it)"
	VM_DIR=$(mktemp -d /tmp/hec-vmtest.XXXXXX)
	trap vm_cleanup EXIT
	trap 'exit 1' INT TERM
}

vm_cleanup() {
	for p in $VM_PIDS; do
		kill "$p" 2>/dev/null || true
	done
	for p in $VM_PIDS; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$p" 2>/dev/null || true
	done
	[ -n "$VM_DIR" ] && rm -rf "$VM_DIR"
}

# vm_image [--add FILE]...: sets KERNEL and INITRD (cache in the build tree)
vm_image() {
	out=$("$B/hec-mkimage" --cache "$B/tests/vm/images" "$@") || fail "hec-mkimage failed"
	KERNEL=$(printf '%s\n' "$out" | sed -n 's/^kernel=//p')
	INITRD=$(printf '%s\n' "$out" | sed -n 's/^initrd=//p')
	[ -f "$KERNEL" ] && [ -f "$INITRD" ] || fail "hec-mkimage printed no image: $out"
	# every rebuilt input makes a new ~60 MB image: drop the ones unused for an hour
	find "$B/tests/vm/images" -mindepth 1 -maxdepth 1 -type d -mmin +60 \
		! -path "${INITRD%/*}" -exec rm -rf {} + 2>/dev/null || true
	touch "${INITRD%/*}"
}

# vm_start NAME INDEX HOSTS NETDEV_ARGS: boots a VM in the background; its
# channel socket is $VM_DIR/NAME.sock, its console $VM_DIR/NAME.console.
# VM_SMP (default 2) vCPUs; VM_NIC: more options of its virtio-net device.
vm_start() {
	vm_try_start "$@" || fail "qemu-system-x86_64 did not start $1"
}
# vm_try_start: the same, but returns 1 if QEMU did not start (its reason on stderr)
vm_try_start() {
	name=$1 idx=$2 hosts=$3 netdev=$4
	qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp "${VM_SMP:-2}" -m 512 \
		-display none -no-reboot -daemonize -pidfile "$VM_DIR/$name.pid" \
		-serial "file:$VM_DIR/$name.console" \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-append "console=ttyS0 panic=-1 quiet hec.node=$name hec.ip=10.77.0.$((idx + 1))/24 hec.hosts=$hosts hec.key=${VM_KEY:-testkey}" \
		-device virtio-serial-pci \
		-chardev "socket,id=hc,path=$VM_DIR/$name.sock,server=on,wait=off" \
		-device virtserialport,chardev=hc,name=hec.0 \
		-netdev "$netdev" \
		-device "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:77:00:0$((idx + 1))${VM_NIC:+,$VM_NIC}" || return 1
	VM_PIDS="$VM_PIDS $(cat "$VM_DIR/$name.pid")"
}
