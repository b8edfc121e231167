#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# vm_gang.sh on a cluster whose agents switch every guest by QMP stop/cont
# (hec cluster up --vm-switch qmp): the guests still take turns, gang stats
# say qmp, their cgroups are never frozen (the dispatcher's gate is the QMP
# one from the moment a guest is up), and a checkpoint of a QMP-switched
# job and its restart complete, its restored guests switched by QMP again.
VM_SWITCH=qmp
. "$HEC_SRCDIR/tests/integration/vm_gang.sh"
