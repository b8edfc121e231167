#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Two VMs joined by QEMU's own socket network (loopback only): mpiexec in
# vm0 starts its proxies through hec-rsh and hec-guest's remote-shell
# service, and the ranks talk over UCX's TCP transport across the VMs.
. "${HEC_SRCDIR:-$(pwd)}/tests/vm/lib.sh"
vm_checks
vm_image --add "$B/tests/mpi/mpi_check"
H=vm0:10.77.0.1,vm1:10.77.0.2
# a port of our own for the VM-to-VM link: the first that takes the listen
port=$((20000 + $$ % 20000))
tries=0
until vm_try_start vm0 0 "$H" "socket,id=n0,listen=127.0.0.1:$port"; do
	tries=$((tries + 1))
	[ "$tries" -lt 20 ] || fail "qemu-system-x86_64 did not start vm0 listening on 20 ports (last $port)"
	port=$((20000 + (port - 20000 + 7919) % 40000))
done
vm_start vm1 1 "$H" "socket,id=n0,connect=127.0.0.1:$port"
C0="timeout 300 $GUESTCTL --timeout 90 $VM_DIR/vm0.sock"
$C0 hello >/dev/null || fail "no HELLO from vm0"
$GUESTCTL --timeout 90 "$VM_DIR/vm1.sock" hello >/dev/null || fail "no HELLO from vm1"

out=$($C0 run -- hec-rsh vm1 hostname </dev/null) || fail "hec-rsh vm1 failed: $out"
[ "$out" = vm1 ] || fail "hec-rsh vm1 hostname said '$out'"
rc=0
$C0 run -- hec-rsh vm1 'exit 7' </dev/null || rc=$?
[ "$rc" = 7 ] || fail "hec-rsh passed exit 7 back as $rc"

# one rank per VM: the proxies really run on both
out=$($C0 run -- mpiexec -n 2 -hosts vm0,vm1 hostname </dev/null) || fail "mpiexec hostname failed: $out"
[ "$(echo "$out" | sort | tr '\n' ' ')" = "vm0 vm1 " ] || fail "ranks ran on: $out"

# Two ranks per VM, through a host file as hec's batch step gives Hydra.
# Without libhec-mpifix.so in the image, MPI_Finalize hung here in about
# 1 run of 5 (see vm/hec-mpifix.c).
t0=$(date +%s%N)
out=$($C0 run --cwd /tmp/job -- /bin/sh -c "printf 'vm0:2\nvm1:2\n' >hosts && mpiexec -f hosts -n 4 $B/tests/mpi/mpi_check 50" </dev/null) ||
	fail "mpi_check across the VMs failed: $out"
t1=$(date +%s%N)
echo "$out"
echo "$out" | grep -q '^result sum=.* OK$' || fail "mpi_check: wrong result"
[ "$(echo "$out" | grep -c '^rank [0-3] size 4 ')" = 4 ] || fail "mpi_check: not 4 ranks"
echo "guest_mpi: OK (mpi_check on 2 VMs x 2 ranks in $(((t1 - t0) / 1000000)) ms)"
