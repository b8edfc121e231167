#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
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

# --user: built by that user in DIR/UID, its own and nobody else's
id -u nobody >/dev/null 2>&1 && command -v setpriv >/dev/null || skip "no user nobody or no setpriv"
nb=$(id -u nobody) ng=$(id -g nobody)
chmod 755 "$T" # the user builds there and reads its file
chmod 644 "$T/prog"
U=$T/u
out=$("$M" --cache "$U" --user "$nb:$ng" --add "$T/prog") || fail "hec-mkimage --user failed: $out"
iu=$(echo "$out" | sed -n 's/^initrd=//p')
ku=$(echo "$out" | sed -n 's/^kernel=//p')
[ "${iu%/*}" = "$U/$nb/$(basename "${iu%/*}")" ] || fail "nobody's image is not under $U/$nb: $iu"
[ "$(stat -c '%U %a' "$U/$nb")" = "nobody 700" ] || fail "$U/$nb: $(stat -c '%U %a' "$U/$nb"), not nobody 700"
for f in "${iu%/*}" "$iu" "$ku"; do
	[ "$(stat -c %u "$f")" = "$nb" ] || fail "$f belongs to uid $(stat -c %u "$f"), not nobody's $nb"
done
[ "$(stat -c %a "$iu")" = 600 ] || fail "$iu has mode $(stat -c %a "$iu"), not 600"
cpio -it --quiet <"$iu" | grep -qx "${T#/}/prog" || fail "nobody's image lacks its file"
# another user (uid 1 is bin or daemon, here only a number) reads none of it
setpriv --reuid=1 --regid=1 --clear-groups -- cat "$iu" >/dev/null 2>&1 && fail "uid 1 can read nobody's image $iu"
setpriv --reuid="$nb" --regid="$ng" --clear-groups -- cat "$iu" >/dev/null || fail "nobody cannot read its own image $iu"
# a file nobody may not read stops the build (the image is built as nobody)
cp "$T/prog" "$T/secret"
chmod 600 "$T/secret"
rc=0; err=$("$M" --cache "$U" --user "$nb:$ng" --add "$T/secret" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "a file nobody cannot read went into its image: rc $rc '$err'"
# concurrent builders for one user: one image, both succeed
printf 'z' >>"$T/prog"
"$M" --cache "$U" --user "$nb:$ng" --add "$T/prog" >"$T/a" 2>&1 &
pa=$!
"$M" --cache "$U" --user "$nb:$ng" --add "$T/prog" >"$T/b" 2>&1 || fail "concurrent --user build b: $(cat "$T/b")"
wait $pa || fail "concurrent --user build a: $(cat "$T/a")"
cmp -s "$T/a" "$T/b" || fail "concurrent --user builds disagree: $(cat "$T/a" "$T/b")"
[ -z "$(find "$U" -name '.build.*' -o -name '.user.*')" ] || fail "a --user build left its directory"
# what a user could have planted at DIR/UID is refused, naming the path, and left alone
mkdir -m 755 "$T/elsewhere"
ln -s "$T/elsewhere" "$U/4242"
rc=0; err=$("$M" --cache "$U" --user 4242:4242 --add "$T/prog" 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$err" = "hec-mkimage: $U/4242: symbolic link, uid 0, mode 777 (wanted: directory, uid 4242, mode 700): refusing to use it" ] ||
	fail "a symbolic link for uid 4242: rc $rc '$err'"
[ -z "$(ls -A "$T/elsewhere")" ] && [ "$(stat -c '%u %a' "$T/elsewhere")" = "0 755" ] ||
	fail "the build wrote or changed through the link: $(ls -la "$T/elsewhere")"
mkdir -m 700 "$U/4243"
chown 4244 "$U/4243"
rc=0; err=$("$M" --cache "$U" --user 4243:4243 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$err" = "hec-mkimage: $U/4243: directory, uid 4244, mode 700 (wanted: directory, uid 4243, mode 700): refusing to use it" ] ||
	fail "uid 4244's directory for uid 4243: rc $rc '$err'"
mkdir -m 755 "$U/4245"
chown 4245 "$U/4245"
rc=0; err=$("$M" --cache "$U" --user 4245:4245 2>&1) || rc=$?
[ "$rc" = 1 ] && echo "$err" | grep -qF "$U/4245: directory, uid 4245, mode 755 (wanted" || fail "a mode 755 directory: rc $rc '$err'"
mkdir -m 1777 "$T/open"
rc=0; err=$("$M" --cache "$T/open" --user "$nb:$ng" 2>&1) || rc=$?
[ "$rc" = 1 ] && [ "$err" = "hec-mkimage: $T/open: mode 1777, writable by other users: refusing to use it as the image cache" ] ||
	fail "a cache anyone may write: rc $rc '$err'"
rc=0; err=$(setpriv --reuid="$nb" --regid="$ng" --clear-groups -- "$M" --cache "$U" --user 1:1 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "nobody built an image for uid 1: '$err'"
echo "mkimage: OK"
