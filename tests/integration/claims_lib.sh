# SPDX-License-Identifier: BSD-3-Clause
# Helpers of the claims_*.sh tests (sourced after lib.sh; they need $cname,
# set by claims_setup after the cluster is up).

claims_setup() {
	cname=$(cluster_name)
	v2root=$(v2_mount)
	[ -n "$v2root" ] || skip "the test reads cgroup v2 cgroup.freeze and cgroup.events; no cgroup2 mount"
}

# cg_dirs NODE JOB: the job's groups on NODE, in every cgroup hierarchy.
cg_dirs() {
	local m
	for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts); do
		[ -d "$m/hec/$cname/$1/job.$2" ] && echo "$m/hec/$cname/$1/job.$2"
	done
	return 0
}

# cg_pids NODE JOB: the processes in them.
cg_pids() {
	local d
	for d in $(cg_dirs "$1" "$2"); do
		find "$d" -name cgroup.procs -exec cat {} +
	done | sort -un
}

# expect_gone JOB MARKER NODE...: within 30 s nothing of JOB is left on the
# NODEs: no cgroup in any hierarchy, and no process whose command line holds
# MARKER (a pattern only the job's command matches; "": the cgroups only, as
# for a job whose other nodes are not cleaned yet).
expect_gone() {
	local job=$1 marker=$2 i node left; shift 2
	for i in $(seq 300); do
		left=
		[ -z "$marker" ] || left=$(procs_with "$marker")
		for node in "$@"; do left="$left $(cg_dirs "$node" "$job")"; done
		[ -z "${left// /}" ] && return 0
		sleep 0.1
	done
	fail "job $job ($(job_state "$job")) left behind: $(for p in $([ -z "$marker" ] || procs_with "$marker"); do ps -o pid=,args= -p "$p"; done) $(for node in "$@"; do cg_dirs "$node" "$job"; done)"
}

# wait_rc JOB RC [SECS]: `hec wait` exits RC for the job, within SECS (120)
wait_rc() {
	local rc=0
	"$HEC" wait --timeout "${3:-120}" "$1" || rc=$?
	[ "$rc" = "$2" ] || fail "hec wait $1 exited $rc ($(job_state "$1"): $(job_field "$1" reason)), expected $2"
}

# freeze_req NODE JOB: what the dispatcher last asked of the job's group on
# NODE (cgroup.freeze: 1 frozen, 0 running), - if it has none.
freeze_req() {
	local f
	{ read -r f <"$v2root/hec/$cname/$1/job.$2/cgroup.freeze"; } 2>/dev/null || f=-
	echo "$f"
}

# same_slots ROUNDS NODE...: every node runs, in every slot, the job the
# gang matrix puts in that slot's row on it (doc/design.md: nodes switch on
# their own at start + k x slot of the published epoch).
#
# Each round reads, on every NODE and at nearly one instant, cgroup.freeze of
# every job the matrix names there: what each node's dispatcher has decided,
# whatever the CPU load does to how soon a freeze completes.  At a boundary a
# dispatcher asks the leaving job to freeze, waits until it is frozen and then
# thaws the entering one, so a node runs exactly one job of its column or,
# mid-switch, none.  A round whose reads lie inside one slot of the epoch in
# force, a fifth of the slot (from the configured slot length) away from
# both of its boundaries, must find on every node either none or the job of
# that slot's row; two at once on a node fail anywhere.  Sets SAMPLES and
# AGREED (rounds where every node ran its job of the row).
same_slots() {
	local rounds=$1 tries g g2 epoch start slot nslots win i k r t0 t1 p0 p1 node j f w exp
	local -A exp_job jobs_on seen_row
	shift
	for tries in 1 2 3; do
		g=$("$HEC" gang --json) || fail "hec gang failed"
		epoch=$(jq '.gang.epoch' <<<"$g")
		start=$(jq '.gang.start' <<<"$g")
		slot=$(jq '.gang.slot_ns' <<<"$g")
		nslots=$(jq '.gang.nslots' <<<"$g")
		# judged in a slot's second half (less a tenth): a dispatcher of
		# a loaded 2-core host may switch a few ms past the boundary
		win=$((slot / 2))
		exp_job=() jobs_on=() seen_row=()
		for node in "$@"; do
			for ((r = 0; r < nslots; r++)); do
				j=$(jq ".gang.rows[$r].nodes.$node // 0" <<<"$g")
				exp_job[$node,$r]=$j
				[ "$j" != 0 ] && jobs_on[$node]="${jobs_on[$node]:-} $j"
			done
		done
		SAMPLES=0 AGREED=0
		for ((i = 0; i < rounds; i++)); do
			t0=${EPOCHREALTIME/./}
			for node in "$@"; do
				w=
				for j in ${jobs_on[$node]:-}; do
					{ read -r f <"$v2root/hec/$cname/$node/job.$j/cgroup.freeze"; } 2>/dev/null || f=1
					[ "$f" = 0 ] && w="$w${w:+ }$j"
				done
				eval "w_$node=\$w"
			done
			t1=${EPOCHREALTIME/./}
			sleep 0.005
			p0=$((t0 * 1000 - start)) p1=$((t1 * 1000 - start))
			[ "$p0" -ge 0 ] || continue
			k=$((p0 / slot))
			[ $((p1 / slot)) = "$k" ] || continue
			[ $((p0 % slot)) -ge "$win" ] && [ $((p1 % slot)) -le $((slot - slot / 10)) ] || continue
			r=$((k % nslots))
			SAMPLES=$((SAMPLES + 1))
			local all=1
			for node in "$@"; do
				eval "w=\$w_$node"
				exp=${exp_job[$node,$r]}
				case $w in
				*" "*) fail "jobs $w both running on $node (slot $k of epoch $epoch)" ;;
				"") all=0 ;;
				"$exp") ;;
				*)
					local others=
					for j in "$@"; do eval "others=\"\$others $j:\${w_$j:-none}\""; done
					# (a new epoch, with rows of its own, is sampled again)
					[ "$("$HEC" gang --json | jq '.gang.epoch')" = "$epoch" ] || continue 3
					fail "$node runs job $w in slot $k (row $r) of epoch $epoch, where the matrix has job $exp; at that instant:$others" ;;
				esac
			done
			[ $all = 1 ] && AGREED=$((AGREED + 1)) && seen_row[$r]=$((${seen_row[$r]:-0} + 1))
		done
		g2=$("$HEC" gang --json) || fail "hec gang failed"
		[ "$(jq '.gang.epoch' <<<"$g2")" = "$epoch" ] && break
		note "a new epoch began while sampling; sampling again"
	done
	[ "$(jq '.gang.epoch' <<<"$g2")" = "$epoch" ] || fail "the epoch kept changing while sampling"
	echo "same_slots: $SAMPLES rounds judged, $AGREED with every node running its job of the row (per row: $(for ((r = 0; r < nslots; r++)); do printf '%s ' "${seen_row[$r]:-0}"; done))"
	[ "$SAMPLES" -ge 50 ] || fail "only $SAMPLES rounds inside slots"
	for ((r = 0; r < nslots; r++)); do
		[ "${seen_row[$r]:-0}" -ge 5 ] || fail "row $r: its jobs were seen running together on every node in only ${seen_row[$r]:-0} rounds"
	done
}
