#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# vm partition claims of doc/design.md ("vm partitions") that vm_job.sh
# does not check (QEMU under TCG here):
# - "a file goes in only if the job's user may read it": a --vm-file only
#   root may read fails nobody's job and is in no image built since, while
#   one nobody may read goes into nobody's image, which no other user may
#   read, and nobody's job completes with its output;
# - after a guest panic and after a cancel nothing of the job is left: no
#   QEMU, no cgroup on any node.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/claims_lib.sh"

need_guests

cluster_up 2
cd "$TEST_DIR"
claims_setup
cache=$(sed -n 's/^image_cache *= *//p' "$HEC_DIR/node0.conf")
cache=${cache:-/var/cache/hec/images}
touch since # images built from here on

note "a file only root may read does not go into nobody's guest image"
id -u nobody >/dev/null 2>&1 && command -v setpriv >/dev/null || skip "no user nobody or no setpriv"
cp "$HEC" "$TEST_DIR/hec" # reachable for nobody wherever the build tree is
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- env HEC_DIR="$HEC_DIR" "$TEST_DIR/hec" "$@"; }
secret=hec-secret-$$-$RANDOM$RANDOM
echo "$secret" >secret
chmod 600 secret
public=hec-public-$$-$RANDOM$RANDOM
echo "$public" >public
chmod 644 public
out=$(as_nobody submit -t 5:00 --partition vm --vm-file "$TEST_DIR/secret" -- /bin/cat "$TEST_DIR/secret") ||
	fail "nobody's submit failed: $out"
s=${out#Submitted job }
"$HEC" wait --timeout 300 "$s" >/dev/null 2>&1
images_with() { find "$cache" -newer since -type f -name 'initrd*' -exec grep -lF -- "$1" {} + 2>/dev/null; }
[ -z "$(images_with "$secret")" ] || fail "the unreadable file is in an image: $(images_with "$secret")"
[ "$(job_state "$s")" = FAILED ] || fail "job $s is $(job_state "$s") ($(job_field "$s" reason))"
reason=$(job_field "$s" reason)
echo "reason: $reason"
grep -qF "$TEST_DIR/secret: not readable for uid $(id -u nobody), so it cannot go into the guest image" <<<"$reason" ||
	fail "job $s: reason '$reason'"
[ "$(job_field "$s" uid)" = "$(id -u nobody)" ] || fail "job $s runs as uid $(job_field "$s" uid)"
expect_gone "$s" "$TEST_DIR/.*/job\\.$s/" node0 node1
# The same for a file nobody may read: it goes in, and nobody's job runs
# to its end; its image is nobody's alone (another uid cannot read it).
out=$(as_nobody submit -t 5:00 --partition vm --vm-file "$TEST_DIR/public" -- /bin/cat "$TEST_DIR/public") ||
	fail "nobody's submit failed: $out"
r=${out#Submitted job }
wait_rc "$r" 0 300
[ "$(job_state "$r")" = COMPLETED ] || fail "job $r is $(job_state "$r") ($(job_field "$r" reason))"
"$HEC" logs "$r" | grep -qxF "$public" || fail "job $r printed '$("$HEC" logs "$r" 2>&1)', not $public"
img=$(images_with "$public")
[ -n "$img" ] || fail "no image holds the readable file of job $r"
for i in $img; do
	[ "$(stat -c %u "$i")" = "$(id -u nobody)" ] || fail "$i (job $r's image) belongs to uid $(stat -c %u "$i"), not nobody"
	! setpriv --reuid=1 --regid=1 --clear-groups -- cat "$i" >/dev/null 2>&1 || fail "uid 1 can read nobody's image $i"
done
expect_gone "$r" "$TEST_DIR/.*/job\\.$r/" node0 node1

note "a cancelled job leaves nothing behind"
cat >count.sh <<'EOF'
#!/bin/sh
#HEC -N 2 -t 10:00 --partition vm --vcpus 1 --mem 256M
i=0
while :; do i=$((i + 1)); echo "tick $i"; sleep 0.2; done
EOF
j=$(submit count.sh)
last_tick() { "$HEC" logs "$1" 2>/dev/null | sed -n 's/^tick //p' | tail -n 1; }
for i in $(seq 600); do
	[ "$(last_tick "$j")" -ge 3 ] 2>/dev/null && break
	job_state "$j" | grep -q RUNNING || fail "job $j is $(job_state "$j"): $(job_field "$j" reason)"
	sleep 0.2
done
[ "$(last_tick "$j")" -ge 3 ] 2>/dev/null || fail "job $j never ticked"
"$HEC" cancel "$j" || fail "cancel $j"
wait_rc "$j" 130
expect_gone "$j" "$TEST_DIR/.*/job\\.$j/" node0 node1

note "a guest that panics leaves nothing behind"
# the batch node's own guest this time (vm_job.sh panics node1's)
cat >panic.sh <<'EOF'
#!/bin/sh
#HEC -N 2 -t 5:00 --partition vm --vcpus 1
echo c >/proc/sysrq-trigger
EOF
p=$(submit panic.sh)
wait_rc "$p" 1 300
job_field "$p" reason | grep -q 'node0: guest kernel panic' || fail "job $p: reason '$(job_field "$p" reason)'"
expect_gone "$p" "$TEST_DIR/.*/job\\.$p/" node0 node1
echo "PASS: $TEST_NAME"
