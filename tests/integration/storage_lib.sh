# SPDX-License-Identifier: BSD-3-Clause
# Helpers of the storage tests (sourced after lib.sh): standalone hecstored
# servers s0..sN-1 on loopback, each with its own directory, and hec-store
# talking to them.  Their logs go to $HEC_DIR/log, so a failing test shows
# them (dump_logs) and a sanitizer report in them fails it.
HECSTORED="$HEC_BUILDDIR/hecstored"
HEC_STORE="$HEC_BUILDDIR/hec-store"
STORE_DIR="$TEST_DIR/store"
STORE_KEY="$STORE_DIR/cluster.key"
# Prefix of every hec-store run (e.g. a valgrind command line).
HS_WRAP=${HS_WRAP:-}
STORE_N=0

[ -x "$HECSTORED" ] || fail "$HECSTORED not built"
[ -x "$HEC_STORE" ] || fail "$HEC_STORE not built"
mkdir -p "$STORE_DIR" "$HEC_DIR/log"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STORE_KEY"
chmod 600 "$STORE_KEY"

# store_dir I: server I's directory.
store_dir() { echo "$STORE_DIR/s$1"; }
store_pid() { cat "$STORE_DIR/s$1.pid"; }
# store_addr I: its HOST:PORT (from DIR/hecstored.addr).
store_addr() { cut -d' ' -f1 "$(store_dir "$1")/hecstored.addr"; }

# store_start_one I [PORT [hecstored args...]]: start (or restart) server sI
# on 127.0.0.1:PORT (default: the port it had, else any) and wait for its
# address file.
store_start_one() {
	local i=$1 port=${2:-} d t; shift; [ $# -gt 0 ] && shift
	d=$(store_dir "$i")
	mkdir -p "$d"
	if [ -z "$port" ]; then
		port=0
		[ -f "$d/hecstored.addr" ] && port=$(store_addr "$i" | sed 's/.*://')
	fi
	rm -f "$d/hecstored.addr"
	setsid "$HECSTORED" --dir "$d" --listen "127.0.0.1:$port" --name "s$i" \
		--key-file "$STORE_KEY" --gc-grace 3600 "$@" </dev/null \
		>>"$HEC_DIR/log/hecstored-s$i.log" 2>&1 &
	echo $! >"$STORE_DIR/s$i.pid"
	for t in $(seq 200); do
		[ -s "$d/hecstored.addr" ] && return 0
		kill -0 "$(store_pid "$i")" 2>/dev/null || fail "hecstored s$i exited at start"
		sleep 0.1
	done
	fail "hecstored s$i wrote no address file in 20 s"
}

# store_start N [hecstored args...]: start servers s0..sN-1.
store_start() {
	local n=$1 i; shift
	for i in $(seq 0 $((n - 1))); do store_start_one "$i" "" "$@"; done
	STORE_N=$n
}

# store_stop I [SIGNAL]: stop server I (default SIGTERM) and wait for it.
store_stop() {
	local pid t
	pid=$(store_pid "$1")
	kill "-${2:-TERM}" "$pid" 2>/dev/null || return 0
	for t in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	fail "hecstored s$1 still running 10 s after SIG${2:-TERM}"
}

# store_servers: the --servers list of s0..sN-1.
store_servers() {
	local i list=""
	for i in $(seq 0 $((STORE_N - 1))); do list="$list${list:+,}s$i=$(store_addr "$i")"; done
	echo "$list"
}

# hs ARGS...: hec-store with the test's servers and key.
hs() { $HS_WRAP "$HEC_STORE" --servers "$(store_servers)" --key-file "$STORE_KEY" "$@"; }

# store_chunk_files JOB EPOCH PART IDX: the servers (s0 ...) holding that chunk file.
store_chunk_files() {
	local i
	for i in $(seq 0 $((STORE_N - 1))); do
		[ -f "$(store_dir "$i")/objects/$1/$2/$3.$4" ] && echo "s$i"
	done
	return 0
}

# store_check_copies ENTRY_FILE JOB EPOCH R: every chunk of the stream
# (the entry hec-store put printed) has R copies on R distinct servers, and
# the files are where the entry says.
store_check_copies() {
	local entry=$1 job=$2 epoch=$3 r=$4 part n idx on files
	part=$(jq -r .part "$entry")
	n=$(jq '.chunks | length' "$entry")
	for idx in $(seq 0 $((n - 1))); do
		on=$(jq -r ".chunks[$idx].on[]" "$entry" | sort | tr '\n' ' ')
		[ "$(jq -r ".chunks[$idx].on[]" "$entry" | sort -u | wc -l)" = "$r" ] ||
			fail "chunk $part.$idx: on '$on', expected $r distinct servers"
		files=$(store_chunk_files "$job" "$epoch" "$part" "$idx" | tr '\n' ' ')
		[ "$files" = "$on" ] ||
			fail "chunk $part.$idx: files on '$files', the entry says '$on'"
	done
}

# store_files JOB [EPOCH]: how many chunk/manifest files the servers hold for it.
store_files() {
	local i d
	for i in $(seq 0 $((STORE_N - 1))); do
		d="$(store_dir "$i")/objects/$1${2:+/$2}"
		[ -d "$d" ] && find "$d" -type f
	done | wc -l
}

# store_cleanup: stop every server (lib.sh's cleanup calls test_cleanup; a
# test with a test_cleanup of its own calls store_cleanup from it).
store_cleanup() {
	local f t
	for f in "$STORE_DIR"/s*.pid; do
		[ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
	done
	for f in "$STORE_DIR"/s*.pid; do
		[ -f "$f" ] || continue
		for t in $(seq 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
	done
	return 0
}
declare -F test_cleanup >/dev/null || test_cleanup() { store_cleanup; }
