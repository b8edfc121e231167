# SPDX-License-Identifier: GPL-2.0-only
# Shared settings and helpers of the hypervisor-patches scripts (sourced).
#
# HEC_XEN_WORK  work dir (default: <repo>/build/xen); holds the fetched
#               source, the build trees, downloaded debs, images and logs.
# HEC_XEN_JOBS  make -j (default 2).

HP_DIR=$(cd "$(dirname "$0")/.." && pwd)
REPO_DIR=$(cd "$HP_DIR/.." && pwd)
WORK=${HEC_XEN_WORK:-$REPO_DIR/build/xen}
JOBS=${HEC_XEN_JOBS:-2}
SERIES_DIR=$HP_DIR/xen-4.17
SRC_LIST=/etc/apt/sources.list.d/hec-xen-deb-src.sources

mkdir -p "$WORK"

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# skip REASON: exit 77, the automake convention for "could not run".
skip() { say "SKIP: $*"; exit 77; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# need_pkgs PKG...: apt-get install the packages that are not installed.
need_pkgs() {
	missing=
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	say "installing:$missing"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >"$WORK/apt-install.log" 2>&1 ||
		{ tail -5 "$WORK/apt-install.log" >&2; die "apt-get install$missing failed"; }
}

# deb-src entry for Debian's main archive (the security archive's mirror
# here serves no sources), written once; apt-get update when it changes.
ensure_deb_src() {
	want=$(awk '
		/^URIs:/ && !u { u=$0 } /^Suites:/ && !s { s=$0 } /^Components:/ && !c { c=$0 }
		/^Signed-By:/ && !k { k=$0 }
		END { print "Types: deb-src"; print u; print s; print c; if (k) print k }' \
		/etc/apt/sources.list.d/debian.sources 2>/dev/null)
	if ! printf '%s' "$want" | grep -q '^URIs:'; then
		want=$(printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n')
	fi
	if [ "$(cat "$SRC_LIST" 2>/dev/null)" != "$want" ]; then
		say "adding $SRC_LIST"
		printf '%s\n' "$want" | as_root tee "$SRC_LIST" >/dev/null
		as_root apt-get update -q >"$WORK/apt-update.log" 2>&1 || die "apt-get update failed"
	elif ! apt-cache showsrc xen >/dev/null 2>&1 || [ -z "$(apt-cache showsrc xen 2>/dev/null)" ]; then
		as_root apt-get update -q >"$WORK/apt-update.log" 2>&1 || die "apt-get update failed"
	fi
}

# Version of the fetched source (set by fetch-build.sh).
xen_version() { cat "$WORK/src/VERSION" 2>/dev/null; }

series_patches() {
	grep -v '^[[:space:]]*#' "$SERIES_DIR/series" | grep -v '^[[:space:]]*$' |
		while read -r p; do echo "$SERIES_DIR/$p"; done
}

series_hash() {
	series_patches | xargs cat | sha256sum | cut -c1-16
}
