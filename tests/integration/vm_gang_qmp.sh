#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# vm_gang.sh on a cluster whose agents switch every guest by QMP stop/cont
# (hec cluster up --vm-switch qmp): the guests still take turns, gang stats
# say qmp, their cgroups are never frozen (the dispatcher's gate is the QMP
# one from the moment a guest is up), and a snapshot and a revert of a
# QMP-switched job complete, its guests rejoining their slots afterwards.
VM_SWITCH=qmp
. "$HEC_SRCDIR/tests/integration/vm_gang.sh"
