#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Checkpoints as HDF5 files (hec-ckpt-h5, ckpt/h5.c), state then verify:
# - a committed checkpoint of two streams (one a multiple of the chunk
#   size, one not, one empty) exported: h5ls and h5dump read the file, its
#   datasets have the streams' sizes and bytes, its attributes the job,
#   epoch and each stream's XXH3;
# - imported as another epoch, committed, read back byte for byte;
# - a byte flipped inside a dataset: the import is refused with a checksum
#   mismatch and nothing of it stays committed; a file that is not HDF5, or
#   not hec's, is refused with the reason;
# - --as: the file is written and read with that user's rights only (a
#   directory nobody may not write is refused; the file made is nobody's).
# hec-test-timeout: 600
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/storage_lib.sh"
command -v jq >/dev/null || skip "jq not installed"
command -v h5dump >/dev/null || skip "h5dump missing (Debian package hdf5-tools)"
H5="$HEC_BUILDDIR/hec-ckpt-h5"
[ -x "$H5" ] || fail "$H5 not built"

store_start 2
W="$TEST_DIR/work"
mkdir -p "$W"
h5() { "$H5" --servers "$(store_servers)" --key-file "$STORE_KEY" "$@"; }
head -c $((8 << 20)) /dev/urandom >"$W/p0"
head -c $((5 << 20 | 777)) /dev/urandom >"$W/p1"
: >"$W/p2"
for p in p0 p1 p2; do
	hs --quiet --chunk-size 1M put 7 3 "$p" <"$W/$p" >"$W/$p.json" || fail "put 7/3/$p failed"
done
hs --quiet commit 7 3 "$W"/p0.json "$W"/p1.json "$W"/p2.json || fail "commit 7/3 failed"

note "export: a file h5ls and h5dump read"
h5 export 7 3 "$W/ck.h5" || fail "export 7/3 failed"
h5ls -r "$W/ck.h5"
h5ls -r "$W/ck.h5" | grep -qE '^/parts/p0 +Group' || fail "no group /parts/p0"
h5ls -r "$W/ck.h5" | grep -qE '^/parts/p0/stream +Dataset \{8388608\}' || fail "no /parts/p0/stream of 8388608 bytes"
h5ls -r "$W/ck.h5" | grep -qE '^/parts/p1/stream +Dataset \{5243657\}' || fail "no /parts/p1/stream of 5243657 bytes"
h5ls -r "$W/ck.h5" | grep -qE '^/parts/p2/stream +Dataset \{0\}' || fail "no empty /parts/p2/stream"
h5ls -r "$W/ck.h5" | grep -qE '^/manifest +Dataset' || fail "no /manifest"
for a in hec_format job epoch; do
	h5dump -a "/$a" "$W/ck.h5" >"$W/attr" || fail "h5dump cannot read attribute $a"
done
h5dump -a /job "$W/ck.h5" | grep -q '(0): 7' || fail "attribute job is not 7: $(h5dump -a /job "$W/ck.h5")"
h5dump -a /epoch "$W/ck.h5" | grep -q '(0): 3' || fail "attribute epoch is not 3"
want=$(jq -r .hash "$W/p1.json")
h5dump -a /parts/p1/xxh3 "$W/ck.h5" | grep -q "\"$want\"" || fail "p1's xxh3 attribute is not $want"
# the dataset's bytes are the stream's: h5dump's binary output of p1
h5dump -d /parts/p1/stream -b LE -o "$W/p1.out" "$W/ck.h5" >/dev/null || fail "h5dump -d /parts/p1/stream failed"
cmp "$W/p1.out" "$W/p1" || fail "/parts/p1/stream holds other bytes than the stream"
"$H5" inspect "$W/ck.h5" | jq -e '.job == 7 and .epoch == 3 and (.parts | length) == 3' >/dev/null ||
	fail "inspect: $("$H5" inspect "$W/ck.h5")"

note "import as epoch 9, commit, read back byte for byte"
h5 import "$W/ck.h5" 7 9 >"$W/imp.json" || fail "import failed"
jq -e '.from.job == 7 and .from.epoch == 3 and (.entries | length) == 3' "$W/imp.json" >/dev/null ||
	fail "import printed $(cat "$W/imp.json")"
jq -c '.entries[]' "$W/imp.json" | hs --quiet commit 7 9 || fail "commit of the imported epoch failed"
for p in p0 p1 p2; do
	hs --quiet get 7 9 "$p" >"$W/$p.back" || fail "get 7/9/$p failed"
	cmp "$W/$p.back" "$W/$p" || fail "imported $p differs from the original"
done

note "a flipped byte in a dataset: refused by checksum, nothing committed"
cp "$W/ck.h5" "$W/bad.h5"
off=$(python3 -c "
import sys
d=open('$W/bad.h5','rb').read(); s=open('$W/p1','rb').read(1<<20)
i=d.find(s[4096:4096+64]); print(i+100 if i>=0 else -1)")
[ "$off" -gt 0 ] || fail "could not find p1's bytes in the file"
flip_byte "$W/bad.h5" "$off" || fail "cannot flip a byte of bad.h5"
cmp -s "$W/bad.h5" "$W/ck.h5" && fail "the flip changed nothing"
expect_fail 1 'checksum mismatch' h5 import "$W/bad.h5" 7 10
hs --quiet latest 7 | grep -qx 9 || fail "latest of job 7 is not 9 after the refused import: $(hs latest 7)"

note "not HDF5, not hec's: refused with the reason"
echo hello >"$W/text.h5"
expect_fail 1 'not an HDF5 file' h5 import "$W/text.h5" 7 11
h5copy -i "$W/ck.h5" -o "$W/other.h5" -s /parts/p2/stream -d /data || fail "h5copy failed"
expect_fail 1 'not a hec checkpoint' h5 import "$W/other.h5" 7 12

note "--as: the user's rights, not root's"
if id -u nobody >/dev/null 2>&1; then
	nob="$(id -u nobody):$(id -g nobody)"
	mkdir -p "$W/root-only" "$W/nobodys"
	chmod 700 "$W/root-only"
	chown nobody "$W/nobodys"
	chmod 755 "$TEST_DIR" "$W"
	expect_fail 1 'cannot create' h5 --as "$nob" export 7 3 "$W/root-only/x.h5"
	[ ! -e "$W/root-only/x.h5" ] || fail "a file was made where nobody may not write"
	h5 --as "$nob" export 7 3 "$W/nobodys/x.h5" || fail "export as nobody into its directory failed"
	[ "$(stat -c %U "$W/nobodys/x.h5")" = nobody ] || fail "the exported file belongs to $(stat -c %U "$W/nobodys/x.h5")"
	chmod 600 "$W/ck.h5"
	expect_fail 1 'not an HDF5 file|unreadable' h5 --as "$nob" import "$W/ck.h5" 7 13
fi
note "HDF5 export and import: OK"
