#!/bin/sh
# hec-mkimage without booting anything: contents, the content-keyed cache
# (a changed input gives a new image, a hit is fast), concurrent builders,
# and its refusals.
. "${HEC_SRCDIR:-$(pwd)}/tests/vm/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (reads /boot and /lib/modules)"
ls /boot/vmlinuz-* >/dev/null 2>&1 || skip "no kernel in /boot (Debian package linux-image-amd64)"
[ -x /bin/busybox ] || skip "no /bin/busybox (Debian package busybox-static)"
M=$B/hec-mkimage
T=$(mktemp -d /tmp/hec-mkimage.XXXXXX)
trap 'rm -rf "$T"' EXIT
cp "$B/tests/mpi/mpi_check" "$T/prog"

out=$("$M" --cache "$T/c" --add "$T/prog") || fail "hec-mkimage failed"
k1=$(echo "$out" | sed -n 's/^kernel=//p')
i1=$(echo "$out" | sed -n 's/^initrd=//p')
[ -f "$k1" ] && [ -f "$i1" ] || fail "no kernel/initrd: $out"
list=$(cpio -it --quiet <"$i1")
for f in init usr/bin/hec-rsh usr/bin/busybox usr/bin/sh usr/bin/mpiexec.hydra usr/bin/mpiexec \
	usr/bin/hydra_pmi_proxy usr/lib/x86_64-linux-gnu/libmpich.so.12 etc/hec/modules \
	etc/hec/environment etc/ld.so.preload usr/lib/hec/libhec-mpifix.so "${T#/}/prog"; do
	echo "$list" | grep -qx "$f" || fail "$f is not in the image"
done
echo "$list" | grep -q 'virtio_net.ko$' || fail "no virtio_net module in the image"
echo "$list" | grep -q 'ucx/libuct_cma.so' || fail "no UCX modules in the image"
[ -z "$(find "$T/c" -name '.build.*')" ] || fail "a build directory was left behind"

# a hit: same paths, quickly
t0=$(date +%s%N)
out2=$("$M" --cache "$T/c" --add "$T/prog") || fail "second hec-mkimage failed"
t1=$(date +%s%N)
[ "$out2" = "$out" ] || fail "a cache hit gave another image: $out2"
echo "cache hit in $(((t1 - t0) / 1000000)) ms"

# one changed byte of an input: another image
printf 'x' >>"$T/prog"
i2=$("$M" --cache "$T/c" --add "$T/prog" | sed -n 's/^initrd=//p')
[ -n "$i2" ] && [ "$i2" != "$i1" ] || fail "a changed input kept the image $i1"

# two builders of one new image at once: both succeed, with the same result
printf 'y' >>"$T/prog"
"$M" --cache "$T/c" --add "$T/prog" >"$T/a" 2>&1 &
pa=$!
"$M" --cache "$T/c" --add "$T/prog" >"$T/b" 2>&1 || fail "concurrent build b: $(cat "$T/b")"
wait $pa || fail "concurrent build a: $(cat "$T/a")"
cmp -s "$T/a" "$T/b" || fail "concurrent builds disagree: $(cat "$T/a" "$T/b")"
[ -z "$(find "$T/c" -name '.build.*')" ] || fail "a concurrent build left its directory"

# refusals: one line each, exit 1
rc=0; err=$("$M" --cache "$T/c" --add /no/such/file 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$err" = "hec-mkimage: /no/such/file: No such file or directory" ] ||
	fail "missing --add: rc $rc '$err'"
rc=0; err=$("$M" --cache "$T/c" --kernel /no/vmlinuz-1 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$(echo "$err" | wc -l)" = 1 ] || fail "missing kernel: rc $rc '$err'"
rc=0; err=$("$M" --cache "$T/c" --add /proc/cpuinfo 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "a file under /proc was accepted"
"$M" --print-inputs --cache "$T/c" | grep -q '^key [0-9a-f]\{32\}$' || fail "--print-inputs has no key"
echo "mkimage: OK"
