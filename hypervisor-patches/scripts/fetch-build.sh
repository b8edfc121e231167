#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Fetch Xen 4.17 as Debian ships it (apt-get source xen), apply the
# hypervisor-patches/xen-4.17 series and build the hypervisor, patched and
# unpatched, plus the dom0 tool (gangctl) and the guest program (gangprobe).
#
#   fetch-build.sh [--each] [--no-unpatched]
#     --each          also build every commit of the series on its own
#     --no-unpatched  skip the unpatched reference build
#
# Results (under $HEC_XEN_WORK, default <repo>/build/xen):
#   xen-unpatched/xen/xen   xen-patched/xen/xen   bin/gangctl  bin/gangprobe
# A second run reuses the source and the builds (make is incremental; the
# patched tree is re-created only when the series changes).
set -eu
. "$(dirname "$0")/lib.sh"

EACH=0 UNPATCHED=1
for a in "$@"; do
	case $a in
	--each) EACH=1 ;;
	--no-unpatched) UNPATCHED=0 ;;
	*) die "unknown option $a" ;;
	esac
done

need_pkgs dpkg-dev gcc make flex bison python3 git libc6-dev xz-utils

# 1. Source, once.
if [ ! -f "$WORK/src/VERSION" ]; then
	ensure_deb_src
	rm -rf "$WORK/src" && mkdir -p "$WORK/src"
	say "apt-get source xen"
	(cd "$WORK/src" && apt-get source -q xen >"$WORK/apt-source.log" 2>&1) ||
		{ tail -5 "$WORK/apt-source.log" >&2; die "apt-get source xen failed"; }
	dir=$(cd "$WORK/src" && ls -d xen-4.17*/ | head -1)
	[ -n "$dir" ] || die "no xen-4.17 source in $WORK/src"
	dpkg-parsechangelog -l "$WORK/src/$dir/debian/changelog" -S Version >"$WORK/src/VERSION.tmp"
	echo "${dir%/}" >"$WORK/src/DIR"
	mv "$WORK/src/VERSION.tmp" "$WORK/src/VERSION"
fi
SRC=$WORK/src/$(cat "$WORK/src/DIR")
say "source: xen $(xen_version) ($SRC)"

git_q() { git -c user.name=hec -c user.email=hec@localhost "$@"; }

# configure_build TREE LOG: Debian's hypervisor config (once per tree:
# rewriting .config would make every run a full rebuild; later Kconfig
# changes are picked up by the build's own syncconfig), then make.
configure_build() {
	tree=$1 log=$2
	: >"$log"
	if [ ! -f "$tree/xen/.config" ]; then
		cp "$tree/debian/xen-kconfig" "$tree/xen/.config"
		make -C "$tree/xen" olddefconfig >>"$log" 2>&1 || { tail -20 "$log" >&2; return 1; }
	fi
	nice make -C "$tree/xen" -j"$JOBS" >>"$log" 2>&1 || { grep -E "error|Error" "$log" | head -20 >&2; return 1; }
}

# 2. Unpatched reference build.
if [ $UNPATCHED = 1 ]; then
	U=$WORK/xen-unpatched
	if [ ! -f "$U/.hec-ok" ]; then
		rm -rf "$U"
		cp -a "$SRC" "$U"
		touch "$U/.hec-ok"
	fi
	t=$(date +%s)
	say "building unpatched hypervisor (log: $WORK/build-unpatched.log)"
	configure_build "$U" "$WORK/build-unpatched.log" || die "unpatched build failed"
	say "unpatched build: $(( $(date +%s) - t )) s"
fi

# 3. Patched tree: a git repository over the pristine source, one commit per
#    patch (git am), so that the series can be built commit by commit.
P=$WORK/xen-patched
H=$(series_hash)
if [ "$(cat "$P/.hec-series" 2>/dev/null)" != "$H" ]; then
	rm -rf "$P"
	cp -a "$SRC" "$P"
	(cd "$P" && git init -q && git_q add -A -f && git_q commit -q -m "xen $(xen_version) as Debian ships it")
	series_patches | while read -r patch; do
		say "applying $(basename "$patch")"
		(cd "$P" && git_q am -q --keep-cr "$patch") || { (cd "$P" && git am --abort); die "$(basename "$patch") does not apply"; }
	done
	echo "$H" >"$P/.hec-series"
fi
t=$(date +%s)
say "building patched hypervisor (log: $WORK/build-patched.log)"
configure_build "$P" "$WORK/build-patched.log" || die "patched build failed"
grep -q '^CONFIG_SCHED_GANG=y' "$P/xen/.config" || die "CONFIG_SCHED_GANG is not enabled"
say "patched build: $(( $(date +%s) - t )) s"

# 4. Optionally every commit of the series on its own (like Xen's CI).
if [ $EACH = 1 ]; then
	E=$WORK/xen-each
	rm -rf "$E"
	git clone -q "$P" "$E"
	# The first commit is built from scratch, the next ones incrementally in
	# the same tree (make follows the dependencies).
	for c in $(cd "$P" && git rev-list --reverse HEAD~$(series_patches | wc -l)..HEAD); do
		(cd "$E" && git checkout -q "$c")
		subj=$(cd "$E" && git log -1 --format=%s)
		say "building commit $c: $subj"
		configure_build "$E" "$WORK/build-each.log" || die "commit '$subj' does not build"
	done
	say "every commit of the series builds"
fi

# 5. dom0 tool and guest program: static, against the patched public headers.
mkdir -p "$WORK/bin"
CFLAGS="-O2 -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -static -I$P/xen/include"
gcc $CFLAGS -o "$WORK/bin/gangctl" "$HP_DIR/tools/gangctl.c"
gcc $CFLAGS -pthread -o "$WORK/bin/gangprobe" "$HP_DIR/guest/gangprobe.c"
say "built $WORK/bin/gangctl $WORK/bin/gangprobe"
