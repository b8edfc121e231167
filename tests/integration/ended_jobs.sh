#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Ended jobs live in the catalog, not in the controller's memory (issue #14):
# - 300 short jobs run to their end; the controller's in-memory job count
#   (`hec cluster status --json`: jobs_in_memory) drops to 0;
# - an old ended job still answers `hec show`, `hec logs`, `hec ckpts`, and
#   `hec cancel` says it has ended;
# - `hec queue --all` pages: --limit N jobs a page, newest first, "more"
#   and "next_before" in --json, --before gives the next page; every job
#   once over all pages, none twice; the table's cursor hint on stderr;
# - a controller restart reloads no ended job (its log says how many it
#   reloaded) and still shows them;
# - `hec restart` of a FAILED job out of memory (its program's checkpoint,
#   spoken by tests/tools/hec-appclient) brings it back: it restores that
#   checkpoint and completes; then it leaves memory again.
# hec-test-timeout: 600
. "$HEC_SRCDIR/tests/integration/lib.sh"
command -v jq >/dev/null || skip "jq not installed"
CLIENT="$HEC_BUILDDIR/tests/tools/hec-appclient"
[ -x "$CLIENT" ] || fail "$CLIENT not built"
cd "$TEST_DIR"
NJOBS=${HEC_ENDED_JOBS:-300}

in_memory() { "$HEC" cluster status --json | jq -r '.cluster.jobs_in_memory'; }
wait_file() { for i in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done; fail "no $1 within 30 s"; }
# wait_memory N: the controller holds N jobs (ended ones leave at its next tick)
wait_memory() {
	local i
	for i in $(seq 100); do [ "$(in_memory)" = "$1" ] && return 0; sleep 0.1; done
	fail "the controller holds $(in_memory) jobs in memory, expected $1: $("$HEC" queue)"
}

cluster_up 2 --storage 2
wait_store s0 up 15
wait_store s1 up 15

note "a job that checkpoints (its program's file) and fails"
head -c 10000 /dev/urandom >data
# it fails once its checkpoint is committed (listed)
app_ckpt_job "$TEST_DIR/listed"
f=$(submit -N 1 -n 1 -o "$TEST_DIR/fout" "$TEST_DIR/job.sh")
wait_file taken
for i in $(seq 300); do
	"$HEC" ckpts "$f" --json >listed.tmp
	[ "$(jq '.ckpts | length' listed.tmp)" = 1 ] && mv listed.tmp listed && break
	sleep 0.1
done
[ -e listed ] || fail "job $f has no committed checkpoint: $(cat listed.tmp)"
e=$(jq '.ckpts[0].epoch' listed)
[ "$e" != null ] || fail "job $f has no committed checkpoint: $(cat listed)"
timeout 60 "$HEC" wait "$f" && fail "job $f completed; it was to fail"
[ "$(job_state "$f")" = FAILED ] || fail "job $f is $(job_state "$f"), expected FAILED"

note "$NJOBS short jobs"
mkdir -p outs
ids=()
for i in $(seq "$NJOBS"); do
	ids+=("$(submit -N 1 -n 1 -o "$TEST_DIR/outs/%j.out" -- /bin/echo "job-$i-done")")
done
for i in $(seq 1800); do
	[ "$("$HEC" queue --json | jq '.jobs | length')" = 0 ] && break
	sleep 0.2
done
left=$("$HEC" queue --json | jq '.jobs | length')
[ "$left" = 0 ] || fail "$left jobs not ended: $("$HEC" queue | head)"
wait_memory 0
echo "all $NJOBS ended; jobs in memory: $(in_memory)"

note "an old ended job: show, logs, ckpts, cancel"
old=${ids[0]}
[ "$(job_state "$old")" = COMPLETED ] || fail "job $old is $(job_state "$old")"
[ "$(job_field "$old" command)" = "/bin/echo job-1-done" ] || fail "job $old: command $(job_field "$old" command)"
[ "$(job_field "$old" nodelist[0])" != null ] || fail "job $old: no nodelist: $("$HEC" show "$old" --json)"
out=$("$HEC" logs "$old") || fail "hec logs $old: $out"
[ "$out" = "job-1-done" ] || fail "hec logs $old printed '$out'"
[ "$("$HEC" ckpts "$old" --json | jq -c .ckpts)" = "[]" ] || fail "hec ckpts $old: $("$HEC" ckpts "$old" --json)"
expect_fail 1 "job $old has already ended \(COMPLETED\)" "$HEC" cancel "$old"
expect_fail 1 "no such job 424242" "$HEC" show 424242
wait_memory 0

note "queue --all pages"
all=$(printf '%s\n' "$f" "${ids[@]}" | sort -n)
total=$((NJOBS + 1))
p1=$("$HEC" queue --all --limit 100 --json) || fail "queue --all --limit 100: $p1"
[ "$(jq '.jobs | length' <<<"$p1")" = 100 ] || fail "first page: $(jq '.jobs | length' <<<"$p1") jobs, expected 100"
[ "$(jq '.more' <<<"$p1")" = true ] || fail "first page says more=$(jq .more <<<"$p1")"
[ "$(jq '[.jobs[].id] | max' <<<"$p1")" = "${ids[-1]}" ] || fail "first page does not hold the newest job ${ids[-1]}"
[ "$(jq '.next_before' <<<"$p1")" = "$(jq '[.jobs[].id] | min' <<<"$p1")" ] ||
	fail "next_before $(jq .next_before <<<"$p1") is not the page's oldest job"
"$HEC" queue --all --limit 100 2>err >table || fail "queue --all --limit 100 (table)"
[ "$(tail -n +2 table | wc -l)" = 100 ] || fail "the table has $(tail -n +2 table | wc -l) rows"
grep -qx "older ended jobs: hec queue --all --before=$(jq .next_before <<<"$p1")" err ||
	fail "the table's stderr: $(cat err)"
seen=$(jq '.jobs[].id' <<<"$p1")
cursor=$(jq '.next_before' <<<"$p1")
pages=1
while [ "$cursor" != null ]; do
	p=$("$HEC" queue --before "$cursor" --limit 100 --json) || fail "queue --before $cursor: $p"
	n=$(jq '.jobs | length' <<<"$p")
	[ "$n" -ge 1 ] && [ "$n" -le 100 ] || fail "page after $cursor has $n jobs"
	[ "$(jq --argjson c "$cursor" '[.jobs[].id | select(. >= $c)] | length' <<<"$p")" = 0 ] ||
		fail "page before $cursor holds newer jobs"
	seen=$(printf '%s\n%s\n' "$seen" "$(jq '.jobs[].id' <<<"$p")")
	[ "$(jq .more <<<"$p")" = true ] || [ "$(jq .next_before <<<"$p")" = null ] ||
		fail "a last page with a cursor: $(jq -c '{more, next_before}' <<<"$p")"
	cursor=$(jq '.next_before' <<<"$p")
	pages=$((pages + 1))
	[ "$pages" -le 10 ] || fail "more than 10 pages of 100 for $total jobs"
done
[ "$pages" = $(((total + 99) / 100)) ] || fail "$pages pages for $total jobs"
dups=$(sort -n <<<"$seen" | uniq -d)
[ -z "$dups" ] || fail "jobs on two pages: $dups"
[ "$(sort -n <<<"$seen")" = "$all" ] || fail "the pages do not hold every job: $(diff <(sort -n <<<"$seen") <(echo "$all") | head)"
n=$("$HEC" queue --all --json | jq '.jobs | length')
[ "$n" = "$total" ] || fail "queue --all (default limit) lists $n jobs, expected $total"
expect_fail 2 "limit" "$HEC" queue --all --limit 0
expect_fail 2 "before" "$HEC" queue --before abc

note "a controller restart reloads no ended job"
ctl_restart_with
grep 'not ended reloaded' "$HEC_DIR/log/hecctld.log" | tail -n 1 | grep -q "catalog: 0 jobs not ended reloaded" ||
	fail "the controller reloaded: $(grep 'reloaded' "$HEC_DIR/log/hecctld.log" | tail -n 1)"
[ "$(in_memory)" = 0 ] || fail "$(in_memory) jobs in memory after the restart"
[ "$(job_state "${ids[5]}")" = COMPLETED ] || fail "job ${ids[5]} after the restart: $(job_state "${ids[5]}")"
[ "$("$HEC" queue --all --json | jq '.jobs | length')" = "$total" ] || fail "queue --all after the restart"

note "hec restart of the FAILED job $f, out of memory"
out=$("$HEC" restart "$f" 2>&1) || fail "hec restart $f: $out"
timeout 120 "$HEC" wait "$f" || fail "job $f after its restart: $(job_state "$f"): $("$HEC" show "$f")"
grep -q "restore ok from $e" fout || fail "the restarted step did not get checkpoint $e's bytes: $(cat fout)"
"$HEC" show "$f" --json | jq -e ".job.restarts | length == 1 and .[0].epoch == $e" >/dev/null ||
	fail "job $f's restarts: $("$HEC" show "$f" --json | jq -c .job.restarts)"
wait_memory 0
"$HEC" cluster down >/dev/null || fail "cluster down"
echo "PASS: $TEST_NAME"
