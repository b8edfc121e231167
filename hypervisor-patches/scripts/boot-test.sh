#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Boot test of the gang scheduler under qemu-system-x86_64 (TCG).
#
#   boot-test.sh [patched|unpatched|both]   (default: both)
#
# Boots the hypervisor built by fetch-build.sh with Debian's kernel as PV
# dom0 and a small initramfs (busybox, Debian's Xen 4.17 toolstack from
# the archive's .debs, gangctl, dom0/init).  dom0 starts two PV guests of 2
# vCPUs (Debian's kernel + gangprobe as /init) and runs the measurement
# phases; analyze.py checks the console log.
# Exit: 0 pass, 1 fail, 77 skip (cannot run here).
set -eu
. "$(dirname "$0")/lib.sh"

MODES=${1:-both}
[ "$MODES" = both ] && MODES="unpatched patched"

need_pkgs qemu-system-x86 cpio gzip python3 dpkg-dev
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
[ -x "$WORK/bin/gangctl" ] && [ -x "$WORK/bin/gangprobe" ] || die "run fetch-build.sh first"

VER=$(xen_version)
DEBS=$WORK/debs
IMG=$WORK/images
LOGS=$WORK/logs
mkdir -p "$DEBS" "$IMG" "$LOGS"

# 1. Debian's Xen toolstack and busybox as .debs, extracted (never installed
#    on the host).  Same version as the source when the archive has it.
XEN_DEBS="xen-utils-4.17 xen-utils-common xenstore-utils libxenmisc4.17 libxencall1
libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenstore4 libxentoollog1
libxenhypfs1 libxendevicemodel1 libxentoolcore1"
if [ ! -f "$DEBS/.ok-$VER" ]; then
	rm -f "$DEBS"/*.deb
	for p in $XEN_DEBS; do
		(cd "$DEBS" && { apt-get download -q "$p=$VER" || apt-get download -q "$p"; } >>"$WORK/apt-download.log" 2>&1) ||
			die "apt-get download $p failed (see $WORK/apt-download.log)"
	done
	(cd "$DEBS" && apt-get download -q libyajl2 busybox-static >>"$WORK/apt-download.log" 2>&1) ||
		die "apt-get download libyajl2 busybox-static failed"
	touch "$DEBS/.ok-$VER"
fi

# 2. Kernel: the host's Debian kernel if installed, else the archive's,
#    extracted into the work dir.
KVER=$(ls /lib/modules 2>/dev/null | grep -- '-amd64$' | sort -V | tail -1 || true)
if [ -n "$KVER" ] && [ -r "/boot/vmlinuz-$KVER" ] && [ -d "/lib/modules/$KVER/kernel/drivers/xen" ]; then
	KROOT=
else
	KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
	[ -n "$KPKG" ] || skip "cannot resolve linux-image-amd64"
	KROOT=$WORK/kernel
	if [ ! -d "$KROOT/boot" ]; then
		(cd "$DEBS" && apt-get download -q "$KPKG" >>"$WORK/apt-download.log" 2>&1) || skip "cannot download $KPKG"
		rm -rf "$KROOT" && mkdir -p "$KROOT"
		dpkg-deb -x "$DEBS/$KPKG"_*.deb "$KROOT"
	fi
	KVER=$(ls "$KROOT/lib/modules" | head -1)
fi
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
MODDIR=$KROOT/lib/modules/$KVER
[ -r "$VMLINUZ" ] || skip "no readable kernel $VMLINUZ"
say "kernel $KVER, xen tools $VER"

# module NAME DEST: a kernel module of $MODDIR, uncompressed.
module() {
	f=$(find "$MODDIR/kernel/drivers/xen" -name "$1.ko*" | head -1)
	[ -n "$f" ] || die "no module $1 in $MODDIR"
	case $f in
	*.ko.xz) xz -dc "$f" >"$2" ;;
	*.ko.zst) zstd -qdc "$f" >"$2" ;;
	*) cp "$f" "$2" ;;
	esac
}

# 3. Guest initramfs: gangprobe as /init.
G=$IMG/guest-root
rm -rf "$G" && mkdir -p "$G/dev" "$G/proc" "$G/sys"
cp "$WORK/bin/gangprobe" "$G/init"
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -1) >"$IMG/guest.img"

# copy_with_libs STAGE FILE...: copy ELF files' shared libraries from the
# stage itself or from the host into the stage.
copy_with_libs() {
	stage=$1; shift
	for f in "$@"; do
		LD_LIBRARY_PATH=$stage/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null |
			awk '/=> \// { print $3 } /^[[:space:]]*\/lib/ { print $1 }'
	done | sort -u | while read -r lib; do
		case $lib in "$stage"/*) continue ;; esac
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$lib" "$stage$lib"
	done
}

# 4. dom0 initramfs for a mode.
make_dom0_img() {
	mode=$1 S=$IMG/dom0-root
	rm -rf "$S" && mkdir -p "$S"
	for d in "$DEBS"/*.deb; do
		case $(basename "$d") in linux-image-*) continue ;; esac
		dpkg-deb -x "$d" "$S"
	done
	rm -rf "$S/usr/share/doc" "$S/usr/share/man" "$S/usr/share/locale" "$S/usr/lib/python3"*
	mkdir -p "$S/bin" "$S/dev" "$S/proc" "$S/sys" "$S/run" "$S/tmp" "$S/etc/hec" \
		"$S/lib/modules" "$S/boot" "$S/usr/local/bin" "$S/var/lib" "$S/var/log"
	ln -sf /run "$S/var/run"
	[ -x "$S/bin/busybox" ] || cp "$S/usr/bin/busybox" "$S/bin/busybox" 2>/dev/null ||
		die "no busybox in busybox-static"
	copy_with_libs "$S" "$S"/usr/lib/xen-4.17/bin/xl "$S"/usr/lib/xen-4.17/bin/xenstored \
		"$S"/usr/lib/xen-4.17/bin/xenconsoled "$S"/usr/lib/xen-4.17/bin/xen-init-dom0 \
		"$S"/usr/lib/xen-4.17/bin/xentrace "$S"/usr/bin/xenstore
	# dlopen()ed, so not seen by ldd: pthread_cancel needs libgcc_s.
	for lib in /lib/x86_64-linux-gnu/libgcc_s.so.1; do
		mkdir -p "$S$(dirname "$lib")" && cp -L "$lib" "$S$lib"
	done
	[ -e "$S/lib64/ld-linux-x86-64.so.2" ] || { mkdir -p "$S/lib64"; cp -L /lib64/ld-linux-x86-64.so.2 "$S/lib64/"; }
	for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs; do
		module $m "$S/lib/modules/$m.ko"
	done
	cp "$VMLINUZ" "$S/boot/vmlinuz"
	cp "$IMG/guest.img" "$S/boot/guest.img"
	cp "$WORK/bin/gangctl" "$S/usr/local/bin/gangctl"
	cp "$HP_DIR/dom0/init" "$S/init" && chmod 755 "$S/init"
	echo "$mode" >"$S/etc/hec/mode"
	for g in gA gB; do
		cat >"$S/etc/hec/$g.cfg" <<-EOF
		name = "$g"
		type = "pv"
		kernel = "/boot/vmlinuz"
		ramdisk = "/boot/guest.img"
		extra = "console=hvc0 quiet loglevel=1 nokaslr clocksource=xen"
		memory = 192
		vcpus = 2
		vif = []
		disk = []
		on_poweroff = "destroy"
		on_crash = "destroy"
		EOF
	done
	[ -e "$S/dev/console" ] || mknod "$S/dev/console" c 5 1 2>/dev/null || true
	(cd "$S" && find . | cpio -o -H newc --quiet | gzip -1) >"$IMG/dom0-$mode.img"
}

# watch PID LOG: wait for QEMU, killing it when the console has been silent
# for $STALL s (a hang: dom0 prints at least every 30 s while it waits) or
# when it has run $CAP s in all.  A loaded host makes the boot slow, not
# silent, so neither limit is meant to be reached by a working boot.
STALL=${HEC_XEN_STALL_TIMEOUT:-600}
CAP=${HEC_XEN_BOOT_TIMEOUT:-1500}
watch() {
	w_start=$(date +%s) w_size=-1 w_why=
	w_seen=$w_start
	while kill -0 "$1" 2>/dev/null; do
		sleep 2
		w_now=$(date +%s)
		w_sz=$(stat -c %s "$2" 2>/dev/null || echo 0)
		[ "$w_sz" != "$w_size" ] && w_size=$w_sz w_seen=$w_now
		if [ $((w_now - w_seen)) -ge "$STALL" ]; then
			w_why="console silent for $STALL s"
		elif [ $((w_now - w_start)) -ge "$CAP" ]; then
			w_why="still running after $CAP s"
		fi
		if [ -n "$w_why" ]; then
			say "stopping qemu: $w_why"
			kill "$1" 2>/dev/null || true
			break
		fi
	done
	w_rc=0
	wait "$1" || w_rc=$?
	[ -n "$w_why" ] || [ $w_rc = 0 ] || say "qemu exited with $w_rc"
}

# 5. Boot.
# -cpu max (QEMU 7.2 TCG) crashes Debian's 6.1 PV dom0 early in boot (#PF in
# create_bounce_frame), with and without the series; qemu64 boots.
QEMU_CPU=${HEC_XEN_QEMU_CPU:-qemu64}
# dom0's kernel boots with its info messages on the console (dom0/init
# lowers the level to 4 before the test's own output starts): a boot that
# stops before /init then shows where it stopped, and a slow one is not
# silent for minutes (one stopped silently after PCI enumeration for 600 s
# on a loaded host, while the same kernel reached /init within 20 s in the next
# boot).
rc=0
for mode in $MODES; do
	XEN=$WORK/xen-$mode/xen/xen
	[ -r "$XEN" ] || die "no $XEN: run fetch-build.sh"
	make_dom0_img "$mode"
	log=$LOGS/boot-$mode.log
	say "booting $mode hypervisor under QEMU TCG (console: $log)"
	t=$(date +%s)
	qemu-system-x86_64 -machine q35 -cpu "$QEMU_CPU" -smp 4 -m 2G \
		-nographic -no-reboot -monitor none -serial stdio -nic none \
		-kernel "$XEN" \
		-append "console=com1 com1=115200,8n1 serial_tx_buffer=1M conring_size=1M dom0_mem=512M,max:512M dom0_max_vcpus=2 loglvl=all guest_loglvl=all noreboot" \
		-initrd "$VMLINUZ console=hvc0 loglevel=7 nokaslr clocksource=xen,$IMG/dom0-$mode.img" \
		</dev/null >"$log" 2>&1 &
	qpid=$!
	trap 'kill $qpid 2>/dev/null; exit 1' INT TERM
	watch $qpid "$log"
	trap - INT TERM
	say "$mode boot: $(( $(date +%s) - t )) s"
	grep -a 'HEC-DOM0' "$log" | grep -av 'HEC-DOM0 vcpu' | tail -12 >&2 || true
done

python3 "$HP_DIR/scripts/analyze.py" --patches "$SERIES_DIR" \
	$(for m in $MODES; do echo "--$m $LOGS/boot-$m.log"; done) || rc=$?
exit $rc
