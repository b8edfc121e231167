# SPDX-License-Identifier: BSD-3-Clause
# The heat example (examples/heat) in the integration tests (sourced after
# lib.sh): the program, its batch script and what its output says.
HEAT="$HEC_BUILDDIR/examples/heat/heat"
[ -x "$HEAT" ] || fail "$HEAT not built"
# 8-40 s a run on these machines (2 ranks, 1024 x 1024, 8 MiB a
# checkpoint): long enough that a node lost after the first interval
# checkpoint (2 s) is declared DOWN (node_timeout 2 s) well before the ranks,
# which outlive their agent, finish (12000 steps took 4 s on a faster VM:
# the job completed before its node's loss was noticed); built with
# AddressSanitizer (scripts/test --sanitize) a step is ~10 times slower
STEPS=24000
ldd "$HEAT" | grep -q libasan && STEPS=3000
ARGS="1024 1024 ${HEC_HEAT_STEPS:-$STEPS}"

# heat_script FILE [NODES]: a batch script running 2 ranks of heat on NODES
# nodes (default 2)
heat_script() {
	cat >"$1" <<EOS
#!/bin/sh
#HEC -N ${2:-2}
#HEC -n 2
#HEC -t 10:00
exec mpiexec -n 2 $HEAT $ARGS
EOS
	chmod +x "$1"
}

checksum_of() { grep '^checksum ' "$1"; }
steps_done() { sed -n 's/^step //p' "$1" | tail -n 1; }
# wait_step OUT N: until the program's output shows step N or later
wait_step() {
	local i s
	for i in $(seq 600); do
		s=$(steps_done "$1")
		[ -n "$s" ] && [ "$s" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "no step $2 in $1 within 60 s: $(tail -n 3 "$1")"
}
