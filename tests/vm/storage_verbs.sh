#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# hec's storage path over real verbs: two TCG guests on a private link, each
# with Soft-RoCE (rdma_rxe); perftest's ib_write_bw between them, then hec's
# fabric layer (hec-fabtest, data verified) and hecstored + hec-store (put,
# commit, get, compared) over libfabric's verbs provider.  Fails if rxe does
# not come up, if any byte differs, or if anything ran over another provider.
# hec-test-timeout: 420
. "${HEC_SRCDIR:-$(pwd)}/tests/vm/lib.sh"
. "${HEC_SRCDIR:-$(pwd)}/tests/vm/rdma_lib.sh"
FABTEST=$B/tests/tools/hec-fabtest
HECSTORED=$B/hecstored
HECSTORE=$B/hec-store
rdma_checks
for f in "$FABTEST" "$HECSTORED" "$HECSTORE"; do
	[ -x "$f" ] || fail "$f not built (make check builds it)"
done
# the consoles in the log, pass or fail
trap 'rdma_consoles; vm_cleanup' EXIT

rdma_image "$FABTEST" "$HECSTORED" "$HECSTORE"
rdma_guests
rdma_up vm0
rdma_up vm1

# the link itself, as perftest sees it: 16 MiB of 64 KiB RDMA WRITEs
ib_write_bw_gbits 65536 256

# hec's fabric layer: 32 MiB in 1 MiB RMA writes, verified by the server
fabtest_gbits verbs 33554432 1048576 7200

# hecstored and hec-store: 8 full chunks and a short one, there and back
grun vm1 sh -c 'head -c 35663241 /dev/urandom >/tmp/in' || fail "vm1: cannot write /tmp/in"
store_start verbs 7100
store_round verbs 7100 1
gstop vm0 srv || fail "hecstored did not exit 0 on SIGTERM"

echo "storage_verbs: OK (guests up in $BOOT_MS ms; Gbit/s: ib_write_bw $IBW_GBITS, hec-fabtest verbs $FAB_GBITS, hec-store put $PUT_GBITS get $GET_GBITS)"
