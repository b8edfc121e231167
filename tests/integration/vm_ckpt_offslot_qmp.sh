#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# vm_ckpt_offslot.sh with the guests switched by QMP stop/cont (hec cluster
# up --vm-switch qmp): a switched-out guest is stopped already when its
# capture begins, and QEMU 7.2's background snapshot resumes it at its end
# of the pause; it goes back to the gang, which stops it again.
# hec-test-timeout: 900
VM_SWITCH=qmp
. "$HEC_SRCDIR/tests/integration/vm_ckpt_offslot.sh"
