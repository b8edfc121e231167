# SPDX-License-Identifier: BSD-3-Clause
# A test's own munged (sourced after lib.sh): its own key in $M, each munged
# on its own socket $M/NAME.sock; never the host's.
command -v munged >/dev/null || skip "munged missing (Debian package munge)"
M="$TEST_DIR/munge"
mkdir -p "$M"
chmod 755 "$M"
dd if=/dev/urandom of="$M/munge.key" bs=1024 count=1 status=none || fail "cannot make a munge key"
chmod 400 "$M/munge.key"
# start_munged NAME: a munged of our key on $M/NAME.sock (as root, which
# munged refuses without --force)
start_munged() {
	local i
	munged -F --force --socket="$M/$1.sock" --key-file="$M/munge.key" --log-file="$M/$1.log" \
		--pid-file="$M/$1.pid" --seed-file="$M/$1.seed" </dev/null >>"$M/$1.out" 2>&1 &
	echo $! >"$M/$1.mypid"
	disown # (its death by SIGKILL below is expected: no "Killed" from this shell)
	for i in $(seq 50); do
		[ -S "$M/$1.sock" ] && return 0
		pid_alive "$(cat "$M/$1.mypid")" || break
		sleep 0.1
	done
	skip "munged cannot run here: $(tail -n 3 "$M/$1.out" "$M/$1.log" 2>/dev/null | tr '\n' ' ')"
}
# stop_munged NAME [SIGNAL]: it ends (TERM: removing its socket; KILL: not)
stop_munged() {
	local pid i
	pid=$(cat "$M/$1.mypid" 2>/dev/null) || return 0
	kill -"${2:-TERM}" "$pid" 2>/dev/null
	for i in $(seq 50); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	rm -f "$M/$1.mypid"
}
