#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Check the console logs of the gang scheduler boot test.

  analyze.py [--patched LOG] [--unpatched LOG] [--patches DIR]

Two sources of evidence:

* the hypervisor's trace (HEC-TRACE, from `gangctl trace`): every context
  switch the gang scheduler made, with Xen system time, pCPU, domain, vCPU;
* the in-guest measurement (HEC W/G/E, guest/gangprobe.c): per vCPU, the
  gaps in which it did not run, on the guest's CLOCK_REALTIME.

The guests' CLOCK_REALTIME runs at Xen's rate (clocksource=xen) but is off
by a per-guest constant (it loses time while booting on the jiffies
clocksource under TCG).  The constant is estimated by matching the ends of
the guest's long gaps in the gang phase with the trace's switch-ins of the
same vCPU (smallest latency); one constant per guest cannot make a
schedule conform that does not.

Xen's own run time of every vCPU (HEC-VCPU, `gangctl vcpu-time` before and
after each phase) is wall time in which the scheduler had the vCPU on a
pCPU, whatever share of the host QEMU got meanwhile.  Every pass/fail check
compares quantities measured in one window of one boot (shares, counts,
the scheduler's decisions), never an absolute speed or lateness: how much
host CPU QEMU gets, and so the in-guest run fractions and how late Xen's
timers fire, change with the host's load; they are printed as figures.

Checks:
  gang (table: 2 slots of 100 ms, gA | gB), from the trace: the table read
      back from the hypervisor is the test's own; every switch
      picked a vCPU of the slot's owner (or idle); outside the time a pCPU
      took to reschedule after a boundary, no vCPU ran outside its domain's
      slots, the two guests never ran at the same time, and both vCPUs of
      the owner ran through its slots while the guests measured;
  gang, in the guests: each guest ran only in its slots, every vCPU ran in
      its own slots rather than the other's, the guests never overlapped;
  every phase: no guest vCPU starved, in Xen's accounting (its run time
      against the other guest vCPUs' in the same window) and in the guest
      (its run time against the mean of the four);
  credit (Pool-0, credit2, no table), rr and cleared (gang pool, no table):
      the gang criterion fails: much of each guest's run time falls outside
      the slots the table would give it (and, from the trace, both guests
      share each gang pCPU in rr);
  unchanged: the series touches no existing scheduler nor the core, and on
      each hypervisor, within its own boot, Pool-0 runs credit2 and credit2
      shares Pool-0's pCPUs fairly among the four spinning guest vCPUs.
  switch cost (figures, printed and written to switch-cost.csv beside the
      logs): the gang ring's times of each switch (pass start, decision
      end, switch done) against the slot boundaries; from Xen's trace
      buffers (HEC-XT, xentrace around the credit and gang phases) the
      same tracepoints timing credit2's passes and the gang scheduler's,
      and their ratio gang/credit2; the in-guest off-CPU gaps of both
      phases.  Checked only that the records are there: every gang switch
      stamped in order, and each scheduler's vCPU-to-vCPU switches traced
      on its own pool's pCPUs.

Prints one line per check and "boot-test: PASS" or "boot-test: FAIL".
"""
import argparse
import bisect
import csv
import math
import os
import re
import sys

TOL_US = 2000            # slot edge tolerance for in-guest data
EARLY_US = 50            # the scheduler's GANG_EARLY
BIG_GAP_US = 20000       # gaps that are deschedules by slot
MATCH_US = 3000          # max latency switch-in -> end of the guest's gap
OFFSET_MATCH_MIN = 5     # gap ends matched at the estimated offset
GANG_OUTSIDE_MAX = 0.02
GANG_FOREIGN_MAX = 0.05
FOREIGN_RUN_US = 1000
GANG_TOGETHER_MIN = 0.90 # trace: own slots that both vCPUs ran through
GANG_OVERLAP_MAX = 0.02
NOGANG_OUTSIDE_MIN = 0.20  # no table: run time outside the would-be slots
TRACE_RUN_MIN = 0.80     # per trace: owner's vCPUs running / slot time
PROGRESS_REL = 0.10      # in-guest: least vCPU run time / mean of the phase's vCPUs
                         # (the host may favour one QEMU thread: 0.35 seen)
FAIR_MIN = 0.60          # Xen's accounting: least / largest guest vCPU run time
IDLE = 0x7FFF
SCHED_CREDIT2 = 6        # XEN_SCHEDULER_CREDIT2 (public/domctl.h)
GANG_SPEC = (('gA',), ('gB',))  # the table dom0/init installs: slot 0 gA, slot 1 gB


# ---- interval arithmetic on sorted lists of [a, b) -------------------------

def norm(iv):
    out = []
    for a, b in sorted(iv):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def total(iv):
    return sum(b - a for a, b in iv)


def inter(x, y):
    out, i, j = [], 0, 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if a < b:
            out.append([a, b])
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def minus(x, y):
    out = []
    for a, b in x:
        cur = a
        for c, d in y:
            if d <= cur or c >= b:
                continue
            if c > cur:
                out.append([cur, c])
            cur = max(cur, d)
        if cur < b:
            out.append([cur, b])
    return out


def union(*ivs):
    return norm([list(p) for iv in ivs for p in iv])


# ---- log parsing -------------------------------------------------------------

REC = re.compile(r'HEC ([WGE]) (\S+) (\S+) (.*)$')
TRC = re.compile(r'HEC-TRACE (\S+) T (-?\d+) (\d+) (\d+) (\d+)(?: (-?\d+) (-?\d+))?')
XTR = re.compile(r'HEC-XT (\S+) X (\S+) (\d+) (\d+) (-?\d+) (\d+) (\d+) (\d+) (\d+)')
XTH = re.compile(r'HEC-XT (\S+) xt (.*)')
TRH = re.compile(r'HEC-TRACE (\S+) gang trace (.*)')
KV = re.compile(r'(\w+)=(-?\d+)')
VCP = re.compile(r'HEC-VCPU (\S+) (before|after) (?:vcpu-time mono_ns=(\d+)|V (\d+) (\d+) (\d+) \d+)')


def pool_cpus(d):
    """pCPUs of a `gangctl pool-info` line ("... cpus=2,3,")."""
    m = re.search(r'cpus=([\d,]*)', d)
    return {int(c) for c in m.group(1).split(',') if c} if m else set()


def parse(path):
    log = {'phases': {}, 'dom0': [], 'domid': {}, 'table': {}, 'stats': {},
           'slots': {}, 'end': None, 'trace': {}, 'trace_ns': {}, 'trace_hdr': {}, 'vcpu': {},
           'pool0_sched': None, 'stamps': {}, 'xt': {}, 'xt_hdr': {}}
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8', 'replace')
    for line in text.splitlines():
        line = line.replace('\r', '')
        m = REC.search(line)
        if m:
            kind, name, phase, rest = m.groups()
            g = log['phases'].setdefault(phase, {}).setdefault(
                name, {'gaps': {}, 'ended': False})
            f = rest.split()
            if kind == 'W':
                g['start_rt'], g['end_rt'], g['nvcpu'] = int(f[0]), int(f[1]), int(f[2])
            elif kind == 'G':
                g['gaps'].setdefault(int(f[0]), []).append([int(f[1]), int(f[2])])
            else:
                g['ended'] = True
            continue
        m = TRC.search(line)
        if m:
            log['trace'].setdefault(m.group(1), []).append(
                (int(m.group(2)) // 1000, int(m.group(3)), int(m.group(4)), int(m.group(5))))
            log['trace_ns'].setdefault(m.group(1), []).append(int(m.group(2)))
            if m.group(6) is not None:
                log['stamps'].setdefault(m.group(1), []).append(
                    (int(m.group(2)), int(m.group(3)), int(m.group(6)), int(m.group(7))))
            continue
        m = XTR.search(line)
        if m:
            log['xt'].setdefault(m.group(1), []).append(
                (m.group(2),) + tuple(int(x) for x in m.groups()[2:]))
            continue
        m = XTH.search(line)
        if m:
            log['xt_hdr'][m.group(1)] = {k: int(v) for k, v in KV.findall(m.group(2))}
            continue
        m = VCP.search(line)
        if m:
            w = log['vcpu'].setdefault(m.group(1), {}).setdefault(m.group(2), {'v': {}})
            if m.group(3):
                w['mono'] = int(m.group(3))
            else:
                w['v'][(int(m.group(4)), int(m.group(5)))] = int(m.group(6))
            continue
        m = TRH.search(line)
        if m:
            log['trace_hdr'][m.group(1)] = {k: int(v) for k, v in KV.findall(m.group(2))}
            continue
        i = line.find('HEC-DOM0 ')
        if i < 0:
            continue
        d = line[i + 9:]
        log['dom0'].append(d)
        if d.startswith('domid '):
            log['domid'] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', d)}
        elif d.startswith('Pool-0: '):
            m2 = re.search(r'sched_id=(\d+)', d)
            log['pool0_sched'] = int(m2.group(1)) if m2 else None
            log['pool0_cpus'] = pool_cpus(d)
        elif re.match(r'gang pool \d+: ', d):
            log['gang_cpus'] = pool_cpus(d)
        elif d.startswith('gang pool=') or d.startswith('gang now_sys_ns='):
            log['table'].update({k: int(v) for k, v in KV.findall(d)})
        elif d.startswith('gang slot '):
            m2 = re.match(r'gang slot (\d+):(.*)', d)
            log['slots'][int(m2.group(1))] = [int(x) for x in m2.group(2).split() if x != '-']
        elif d.startswith('after gang generation='):
            log['stats'] = {k: int(v) for k, v in KV.findall(d)}
        elif d.startswith('END rc='):
            log['end'] = int(d.split('=')[1])
    return log


def gap_list(g, v):
    """Gaps of vCPU v as absolute guest CLOCK_REALTIME us."""
    s = g['start_rt'] // 1000
    return norm([[s + a, s + b] for a, b in g['gaps'].get(v, [])])


def estimate_offset(log, name):
    """Guest CLOCK_REALTIME - Xen system time (us), from the gang phase.

    Returns (offset, matches, long gaps, chance): chance is the most
    matches at offsets 6..94 ms away from the best, what the switch-ins'
    density alone gives.  (A loaded host delays many gap ends by tens of ms
    after the switch-in, so the matches are judged against chance, not
    against the number of gaps.)
    """
    g = log['phases'].get('gang', {}).get(name)
    d = log['domid'].get(name)
    tr = log['trace'].get('gang')
    if not g or d is None or not tr or 'start_rt' not in g:
        return None, 0, 0, 0
    ends, ins = [], {}
    for v in range(g['nvcpu']):
        ends += [(v, b) for a, b in gap_list(g, v) if b - a >= BIG_GAP_US]
        ins[v] = sorted(t for t, cpu, dom, vc in tr if dom == d and vc == v)
    if not ends:
        return None, 0, 0, 0

    def matches(o):
        lat = []
        for v, e in ends:
            s = ins[v]
            i = bisect.bisect_right(s, e - o) - 1
            if i >= 0 and e - o - s[i] <= MATCH_US:
                lat.append(e - o - s[i])
        return lat

    best, best_n = None, 0
    for v, e in ends:
        for s in ins[v]:
            n = len(matches(e - s))
            if n > best_n:
                best, best_n = e - s, n
    if best is None:
        return None, 0, len(ends), 0
    lat = matches(best)
    chance = max(len(matches(best + dl * 1000)) for dl in range(6, 95, 2))
    return best + min(lat), best_n, len(ends), chance


def to_xen(g, off):
    g['start'] = g['start_rt'] // 1000 - off
    g['end'] = g['end_rt'] // 1000 - off
    g['off'] = off


def runs(g, off):
    """Run intervals (us) of each vCPU of a guest: window minus gaps."""
    w = [[g['start_rt'] // 1000 - off, g['end_rt'] // 1000 - off]]
    return {v: minus(w, [[a - off, b - off] for a, b in gap_list(g, v)])
            for v in range(g['nvcpu'])}


# ---- checks ------------------------------------------------------------------

class Report:
    def __init__(self):
        self.ok = True

    def check(self, cond, what):
        print('  %-4s %s' % ('ok' if cond else 'FAIL', what))
        self.ok &= bool(cond)
        return cond


def guest_metrics(ph, offs, lo=None):
    """Per-guest runs, each in its own window; overlap when offsets are known.

    (On a loaded host dom0's commands reach the two guests seconds apart, so
    their windows may barely overlap: per-guest figures use each guest's own.)
    """
    names = sorted(ph)
    common = all(offs.get(n) is not None for n in names)
    m = {'names': names, 'g': {}, 'common': common}
    if common:
        start = max(ph[n]['start_rt'] // 1000 - offs[n] for n in names)
        end = min(ph[n]['end_rt'] // 1000 - offs[n] for n in names)
        if lo is not None:
            start = max(start, lo)
    for n in names:
        off = offs.get(n) or 0
        r = runs(ph[n], off)
        win = [[ph[n]['start_rt'] // 1000 - off, ph[n]['end_rt'] // 1000 - off]]
        if lo is not None and common:
            win[0][0] = max(win[0][0], lo)
        r = {v: inter(iv, win) for v, iv in r.items()}
        wl = max(win[0][1] - win[0][0], 1)
        anyr = union(*r.values())
        allr = r[0]
        for v in r:
            allr = inter(allr, r[v])
        big = [b - a for v in r for a, b in gap_list(ph[n], v) if b - a >= BIG_GAP_US]
        m['g'][n] = {'runs': r, 'any': anyr, 'all': allr, 'win': win, 'len': wl,
                     'frac': [total(r[v]) / wl for v in sorted(r)],
                     'together': total(allr) / max(total(anyr), 1), 'big': len(big)}
    if common:
        m['win'] = [[start, end]]
        m['len'] = max(end - start, 1)
        a, b = (m['g'][n]['any'] for n in names)
        m['overlap'] = total(inter(a, b)) / max(min(total(a), total(b)), 1)
    return m


def show(m, label):
    for n in m['names']:
        g = m['g'][n]
        print('  %s %s: window %.2f s, run fraction per vCPU %s, both vCPUs running %.3f of'
              ' its run time, gaps >= %d ms: %d'
              % (label, n, g['len'] / 1e6, ' '.join('%.3f' % f for f in g['frac']),
                 g['together'], BIG_GAP_US // 1000, g['big']))
    if m['common']:
        print('  %s overlap of the two guests: %.3f of the smaller run time' % (label, m['overlap']))


def complete(rep, log, phase, label):
    ph = log['phases'].get(phase, {})
    ok = (len(ph) == 2 and all(g.get('ended') and 'start_rt' in g for g in ph.values())
          and all(g['nvcpu'] == 2 for g in ph.values()))
    rep.check(ok, '%s: phase "%s" measured in both guests (2 vCPUs each)' % (label, phase))
    return ok


def gang_owner(log):
    """Slot -> domids of the test's table (GANG_SPEC), or None."""
    dom = log['domid']
    if not all(n in dom for names in GANG_SPEC for n in names):
        return None
    return {i: [dom[n] for n in names] for i, names in enumerate(GANG_SPEC)}


def xen_view(rep, log, phase, label):
    """Xen's run time per vCPU over the phase (dom0's window around it).

    The scheduler's own accounting: under TCG, wall time in which it had the
    vCPU on a pCPU, however much host CPU QEMU got meanwhile.  The guest
    vCPUs are compared with each other in the same window.
    """
    w = log['vcpu'].get(phase, {})
    b, a = w.get('before', {}), w.get('after', {})
    names = {d: n for n, d in log['domid'].items()}
    names[0] = 'dom0'
    keys = sorted(k for k in a.get('v', {}) if k in b.get('v', {}))
    guest = [k for k in keys if k[0] in log['domid'].values()]
    if not rep.check('mono' in a and 'mono' in b and a['mono'] > b['mono'] and len(guest) == 4,
                     '%s/%s (Xen): run time of every vCPU read before and after the phase'
                     ' (%d guest vCPUs)' % (label, phase, len(guest))):
        return None
    win = a['mono'] - b['mono']
    frac = {k: (a['v'][k] - b['v'][k]) / win for k in keys}
    print('  %s/%s (Xen): %.2f s window, run fraction per vCPU %s'
          % (label, phase, win / 1e9, ' '.join('%s.%d %.3f' % (names.get(k[0], k[0]), k[1], frac[k])
                                             for k in keys)))
    fg = [frac[k] for k in guest]
    fair = min(fg) / max(max(fg), 1e-9)
    rep.check(fair >= FAIR_MIN,
              '%s/%s (Xen): no guest vCPU starved: least / largest run time of the four %.3f'
              ' (>= %.2f, same window)' % (label, phase, fair, FAIR_MIN))
    return {'frac': frac, 'fair': fair, 'mean': sum(fg) / len(fg)}


def check_share(rep, log, phase, label, offs):
    xen = xen_view(rep, log, phase, label)
    if not complete(rep, log, phase, label):
        return None
    m = guest_metrics(log['phases'][phase], offs)
    m['xen'] = xen
    show(m, '%s/%s' % (label, phase))
    fr = [f for n in m['names'] for f in m['g'][n]['frac']]
    mean = sum(fr) / len(fr)
    rep.check(mean > 0 and min(fr) >= PROGRESS_REL * mean,
              '%s/%s (in-guest): every vCPU progressed: least run fraction %.3f = %.2f of the'
              ' mean %.3f (>= %.2f)' % (label, phase, min(fr), min(fr) / max(mean, 1e-9), mean,
                                        PROGRESS_REL))
    if xen:
        print('  %s/%s: the guests saw %.2f of the time Xen ran their vCPUs (the rest the host'
              ' did not run QEMU; a figure of the host\'s load, not checked)'
              % (label, phase, mean / max(xen['mean'], 1e-9)))
    t, dom = log['table'], log['domid']
    owner = gang_owner(log)
    if m['common'] and t.get('slot_ns') and owner:
        # The gang criterion applied where no table was in force must fail.
        t0, sl = t['t0_sys_ns'] // 1000, t['slot_ns'] // 1000
        for n in m['names']:
            own = [x for x, doms in owner.items() if dom.get(n) in doms]
            (start, end), = m['g'][n]['win']
            mine = norm([[t0 + k * sl, t0 + (k + 1) * sl]
                         for k in range((start - t0) // sl, (end - t0) // sl + 1) if k % 2 in own])
            anyr = m['g'][n]['any']
            out = total(minus(anyr, mine)) / max(total(anyr), 1)
            rep.check(out >= NOGANG_OUTSIDE_MIN,
                      '%s/%s %s: no gang schedule: %.3f of its run time falls outside the slots the'
                      ' table would give it (>= %.2f)' % (label, phase, n, out, NOGANG_OUTSIDE_MIN))
    return m


def trace_segments(tr, end):
    """Per pCPU: [start, end, dom, vcpu] between consecutive switches."""
    seg = {}
    for cpu in sorted({r[1] for r in tr}):
        rs = sorted((r for r in tr if r[1] == cpu), key=lambda r: r[0])
        for i, (t, _, dom, vc) in enumerate(rs):
            nxt = rs[i + 1][0] if i + 1 < len(rs) else end
            seg.setdefault(cpu, []).append([t, nxt, dom, vc])
    return seg


def check_trace_gang(rep, log, t0, slot, nsl, owner, mwin=None):
    label = 'patched/gang trace'
    tr = log['trace'].get('gang')
    hdr = log['trace_hdr'].get('gang', {})
    if not rep.check(tr and hdr.get('lost', 1) == 0,
                     '%s: hypervisor trace read (%d switches, %s lost)'
                     % (label, len(tr or []), hdr.get('lost', '?'))):
        return {}
    end = hdr['now_sys_ns'] // 1000
    lo = max(t0, min(r[0] for r in tr))
    seg = trace_segments(tr, end)

    # The scheduler's slot decisions, judged in ns like the scheduler makes
    # them: in us, a switch exactly EARLY_US before a boundary is ambiguous.
    tns = log['trace_ns'].get('gang', [])
    t0n, sln, early_ns = log['table']['t0_sys_ns'], log['table']['slot_ns'], EARLY_US * 1000

    def slot_of(tn):
        return ((tn + early_ns - t0n) // sln) % nsl

    bad = [r for r, tn in zip(tr, tns) if tn + early_ns >= t0n and r[2] != IDLE and
           r[2] not in owner.get(slot_of(tn), [])]
    rep.check(not bad, '%s: every switch after t0 picked a vCPU of the slot\'s owner or idle'
              ' (%d of %d violate%s)' % (label, len(bad), sum(1 for r in tr if r[0] >= t0),
                                         ': %s' % bad[:3] if bad else ''))
    # Lateness: a pCPU's first reschedule after each boundary.
    late, latewin = [], {}
    for cpu, ss in seg.items():
        times = [s[0] for s in ss]
        times_ns = sorted(tn for r, tn in zip(tr, tns) if r[1] == cpu)
        k = -(-(max(lo, times[0]) - t0) // slot)
        while t0 + k * slot < end:
            b = t0 + k * slot
            # (the first switch may come after the slot ended: the pCPU's
            # timer interrupt was that late; nothing ran by a decision then.
            # It may also come up to EARLY_US before the boundary: the
            # scheduler takes a timer that fires that early for the
            # boundary, so the switch window spans [switch, boundary].)
            i = bisect.bisect_left(times_ns, t0n + k * sln - early_ns)
            if i < len(times):
                late.append(max(times[i] - b, 0))
                latewin.setdefault(cpu, []).append([min(times[i], b), max(times[i], b)])
            k += 1
    late.sort()
    if late:
        print('  %s: first reschedule after a boundary, per pCPU: median %.1f us, 90%% %.1f us,'
              ' max %.1f us (%d boundaries)' % (label, late[len(late) // 2],
                                                 late[int(len(late) * 0.9)], late[-1], len(late)))
    # Running intervals per domain, minus each pCPU's lateness window.
    run = {}
    for cpu, ss in seg.items():
        lw = norm(latewin.get(cpu, []))
        for a, b, dom, vc in ss:
            if dom == IDLE:
                continue
            iv = minus(inter([[a, b]], [[lo, end]]), lw)
            run.setdefault(dom, {}).setdefault(vc, []).extend(iv)
    run = {d: {v: norm(iv) for v, iv in vs.items()} for d, vs in run.items()}
    win = [[lo, end]]
    for n, d in sorted(log['domid'].items()):
        own = [s for s, doms in owner.items() if d in doms]
        k0 = (lo - t0) // slot
        mine = norm([[t0 + k * slot, t0 + (k + 1) * slot]
                     for k in range(k0, (end - t0) // slot + 1) if k % nsl in own])
        anyr = union(*run.get(d, {}).values())
        outside = total(minus(anyr, mine))
        rep.check(anyr and outside == 0,
                  '%s %s: ran only in its slots (%.1f ms of %.1f ms outside, lateness windows'
                  ' excluded)' % (label, n, outside / 1e3, total(anyr) / 1e3))
        # Every vCPU of the owner running through each complete own slot.
        # (only while the guests measured: before, their vCPUs mostly idle)
        mlo, mhi = mwin.get(d, (lo, end)) if mwin else (lo, end)
        full = [[t0 + k * slot, t0 + (k + 1) * slot] for k in range(k0 + 1, (end - t0) // slot)
                if k % nsl in own and t0 + k * slot >= mlo and t0 + (k + 1) * slot <= mhi]
        vs = run.get(d, {})
        okn = 0
        for s in full:
            slot_iv = minus([s], union(*[norm(latewin.get(c, [])) for c in latewin]))
            need = total(slot_iv)
            okn += all(total(inter(vs.get(v, []), slot_iv)) >= TRACE_RUN_MIN * need
                       for v in range(2))
        rep.check(full and okn >= GANG_TOGETHER_MIN * len(full),
                  '%s %s: both vCPUs ran through %d/%d of its slots (>= %.0f%% of each)'
                  % (label, n, okn, len(full), TRACE_RUN_MIN * 100))
    doms = sorted(log['domid'].values())
    if len(doms) == 2:
        a = union(*run.get(doms[0], {}).values())
        b = union(*run.get(doms[1], {}).values())
        both = total(inter(a, b))
        rep.check(both == 0, '%s: the two guests never ran at the same time (%.1f ms together,'
                  ' lateness windows excluded)' % (label, both / 1e3))
    del win
    # Where each (domain, vCPU) ran, for the in-guest checks.
    where = {}
    for t, cpu, dom, vc in tr:
        if dom != IDLE:
            where.setdefault((dom, vc), {}).setdefault(cpu, 0)
            where[(dom, vc)][cpu] += 1
    return {key: norm(latewin.get(max(c, key=c.get), [])) for key, c in where.items()}


def check_trace_rr(rep, log):
    tr = log['trace'].get('rr')
    if not tr:
        rep.check(False, 'patched/rr trace: hypervisor trace read')
        return
    per = {}
    for t, cpu, dom, vc in tr:
        if dom != IDLE:
            per.setdefault(cpu, set()).add(dom)
    rep.check(len(per) == 2 and all(len(d) == 2 for d in per.values()),
              'patched/rr trace: without a table, both guests share each gang pCPU (round-robin):'
              ' %s' % {c: sorted(d) for c, d in sorted(per.items())})


def check_gang(rep, log, offs):
    label = 'patched/gang'
    xen_view(rep, log, 'gang', 'patched')
    if not complete(rep, log, 'gang', 'patched'):
        return
    t, dom = log['table'], log['domid']
    if not rep.check(t.get('slots') == 2 and t.get('slot_ns') and 't0_sys_ns' in t
                     and len(log['slots']) == 2,
                     '%s: table read back from the hypervisor (2 slots)' % label):
        return
    # The schedule is judged against the table the test means to install,
    # not against what the hypervisor reports: a slot given to the wrong
    # domain must fail even if the scheduler follows it faithfully.
    owner = gang_owner(log)
    if not rep.check(owner and log['slots'] == owner,
                     '%s: the hypervisor holds the test\'s table (%s): read back %s'
                     % (label, ', '.join('slot %d = %s' % (i, '+'.join(ns))
                                         for i, ns in enumerate(GANG_SPEC)),
                        ', '.join('slot %d = %s' % (i, '+'.join(
                            {d: n for n, d in dom.items()}.get(x, 'dom%d' % x) for x in xs) or '-')
                                  for i, xs in sorted(log['slots'].items())))) and not owner:
        return
    slot_us = t['slot_ns'] // 1000
    t0_us = t['t0_sys_ns'] // 1000
    nsl = len(owner)
    print('  %s: slot %d ms, t0 = %d ns Xen system time (wallclock %d), slots %s, domids %s'
          % (label, slot_us // 1000, t['t0_sys_ns'], t.get('t0_wall_ns', 0), owner, dom))
    if not all(offs.get(n) is not None for n in log['phases']['gang']):
        check_trace_gang(rep, log, t0_us, slot_us, nsl, owner)
        rep.check(False, '%s: guest clocks related to Xen system time' % label)
        return
    m = guest_metrics(log['phases']['gang'], offs, lo=t0_us)
    latewin = check_trace_gang(rep, log, t0_us, slot_us, nsl, owner,
                               {dom.get(n): m['g'][n]['win'][0] for n in m['names']}) or {}
    show(m, label)
    for n in m['names']:
        g = m['g'][n]
        start, end = g['win'][0]
        k_first = -(-(start - t0_us) // slot_us)
        k_last = (end - t0_us) // slot_us - 1
        own = [s for s, doms in owner.items() if dom.get(n) in doms]
        k0 = (start - t0_us) // slot_us
        slots = [[t0_us + k * slot_us, t0_us + (k + 1) * slot_us]
                 for k in range(k0, (end - t0_us) // slot_us + 1) if k % nsl in own]
        mine = inter(norm(slots), g['win'])
        wide = norm([[a - TOL_US, b + TOL_US] for a, b in slots])
        # Run time that the late timer of the vCPU's pCPU explains (the trace
        # shows no reschedule yet after the boundary) is not held against it.
        lw = {v: latewin.get((dom.get(n), v), []) for v in g['runs']}
        runs_nl = {v: minus(r, lw[v]) for v, r in g['runs'].items()}
        any_nl = union(*runs_nl.values())
        raw = total(minus(g['any'], wide)) / max(total(g['any']), 1)
        outside = total(minus(any_nl, wide)) / max(total(g['any']), 1)
        strict = total(minus(any_nl, mine)) / max(total(g['any']), 1)
        own_n = own_ok = foreign_n = foreign_ran = 0
        own_v, foreign_v = [0] * len(g['runs']), [0] * len(g['runs'])
        shares = []
        for k in range(k_first, k_last + 1):
            inner = [[t0_us + k * slot_us + TOL_US, t0_us + (k + 1) * slot_us - TOL_US]]
            per = [total(inter(r, inner)) / (slot_us - 2 * TOL_US) for r in g['runs'].values()]
            if k % nsl not in own:
                per = [total(inter(r, inner)) / (slot_us - 2 * TOL_US) for r in runs_nl.values()]
            if k % nsl in own:
                own_n += 1
                own_ok += all(p > 0 for p in per)
                own_v = [c + (p > 0) for c, p in zip(own_v, per)]
                shares += per
            else:
                foreign_n += 1
                ran = [p * (slot_us - 2 * TOL_US) > FOREIGN_RUN_US for p in per]
                foreign_ran += any(ran)
                foreign_v = [c + r for c, r in zip(foreign_v, ran)]
        share = sum(shares) / max(len(shares), 1)
        print('  %s %s: owns slot(s) %s; run time outside own slots %.4f (%.4f without the'
              ' %d us edge tolerance; %.4f before excluding pCPU timer lateness); own slots'
              ' where every vCPU ran: %d/%d; other slots where it ran: %d/%d; mean vCPU share'
              ' of own slot time %.3f' % (label, n, own, outside, strict, TOL_US, raw, own_ok,
                                          own_n, foreign_ran, foreign_n, share))
        rep.check(own and outside <= GANG_OUTSIDE_MAX and foreign_ran <= GANG_FOREIGN_MAX * foreign_n,
                  '%s %s (in-guest): ran only in its slots (outside %.4f <= %.2f, other slots %d/%d)'
                  % (label, n, outside, GANG_OUTSIDE_MAX, foreign_ran, foreign_n))
        # In how many of its slots a vCPU ran is how often the host ran its
        # QEMU thread then (the trace shows Xen ran it through all of them):
        # a figure.  That it ran in its own slots and not in the others' is
        # the property.
        rep.check(own_n >= 5 and all(o >= 1 and o > f for o, f in zip(own_v, foreign_v)),
                  '%s %s (in-guest): every vCPU ran in its own slots, not in the other\'s: vCPUs'
                  ' ran in %s of %d own and %s of %d other slots (all vCPUs in %d own slots)'
                  % (label, n, ', '.join(map(str, own_v)), own_n, ', '.join(map(str, foreign_v)),
                     foreign_n, own_ok))
        g['any_nl'] = any_nl
    # As for the run time outside the slots: what a pCPU whose timer came
    # late ran after the boundary is the lateness (reported), not overlap.
    a, b = (m['g'][n]['any_nl'] for n in m['names'])
    overlap = total(inter(a, b)) / max(min(total(a), total(b)), 1)
    rep.check(overlap <= GANG_OVERLAP_MAX,
              '%s (in-guest): the guests never ran at the same time (overlap %.4f <= %.2f;'
              ' %.4f before excluding pCPU timer lateness)'
              % (label, overlap, GANG_OVERLAP_MAX, m['overlap']))
    s = log['stats']
    if s:
        print('  %s: hypervisor statistics: %d slot boundaries crossed by the pool\'s pCPUs, '
              'reschedule late by %.1f us on average, %.1f us at most'
              % (label, s.get('boundaries', 0), s.get('late_avg_ns', 0) / 1e3,
                 s.get('late_max_ns', 0) / 1e3))
        rep.check(s.get('boundaries', 0) > 0, '%s: the hypervisor counted slot boundaries' % label)


# ---- cost of a context switch (figures) -------------------------------------

class Figures:
    """Distributions printed as min/p50/p99/max and kept as CSV rows.  (The
    minimum is the switch the host disturbed least: under TCG a QEMU
    thread that the host deschedules stretches whatever Xen was doing.)"""
    COLS = ('boot', 'source', 'scheduler', 'phase', 'metric', 'n',
            'min_us', 'p50_us', 'p99_us', 'max_us')

    def __init__(self):
        self.rows = []

    def dist(self, boot, source, sched, phase, metric, us):
        us = sorted(us)
        if not us:
            print('  %s %s %s/%s %s: none' % (source, sched, boot, phase, metric))
            return None
        q = [us[0]] + [us[max(0, math.ceil(f * len(us)) - 1)] for f in (0.5, 0.99)] + [us[-1]]
        print('  %-8s %-7s %s/%s %s: n=%d, min %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us'
              % (source, sched, boot, phase, metric, len(us), q[0], q[1], q[2], q[3]))
        self.rows.append((boot, source, sched, phase, metric, len(us)) + tuple(q))
        return q

    def ratio(self, boot, source, metric, num, den):
        """gang / credit2 of min, p50, p99 and max, from one boot."""
        if not num or not den or not all(den):
            return
        r = [a / b for a, b in zip(num, den)]
        print('  %-8s gang/credit2 %s %s: min %.2f, p50 %.2f, p99 %.2f, max %.2f'
              % (source, boot, metric, r[0], r[1], r[2], r[3]))
        self.rows.append((boot, source, 'gang/credit2', 'gang/credit', 'ratio of ' + metric, '')
                         + tuple(r))

    def write(self, path):
        with open(path, 'w', newline='') as f:
            w = csv.writer(f)
            w.writerow(self.COLS)
            for r in self.rows:
                w.writerow([x if isinstance(x, (str, int)) else '%.3f' % x for x in r])


def ring_cost(rep, log, figs):
    """The gang scheduler's own ring: Xen system time of each switch's pass
    start, decision end and context switch done (context_saved hook)."""
    st = log['stamps'].get('gang')
    t, hdr = log['table'], log['trace_hdr'].get('gang', {})
    if not rep.check(st and t.get('slot_ns') and 't0_sys_ns' in t and 'now_sys_ns' in hdr,
                     'patched/switch cost: the gang trace has decision and switch times'):
        return
    t0, sl, early = t['t0_sys_ns'], t['slot_ns'], EARLY_US * 1000
    sw = [r for r in st if r[0] + early >= t0]
    stamped = [r for r in sw if r[3]]
    order = [r for r in stamped if not r[0] <= r[2] <= r[3]]
    cpus = {r[1] for r in sw}
    # A read can come between a pCPU's decision and its switch: at most one
    # unstamped switch per pCPU.  A missing context_saved hook leaves all.
    rep.check(sw and not order and len(sw) - len(stamped) <= len(cpus),
              'patched/switch cost: every gang switch after t0 was stamped in order, pass start'
              ' <= decision <= switch done (%d of %d stamped, %d out of order)'
              % (len(stamped), len(sw), len(order)))
    figs.dist('patched', 'ring', 'gang', 'gang', 'decision (all switches)',
              [(r[2] - r[0]) / 1e3 for r in sw])
    figs.dist('patched', 'ring', 'gang', 'gang', 'pass start to switch done (all switches)',
              [(r[3] - r[0]) / 1e3 for r in stamped])
    # The first switch of each pCPU after each boundary: the slot switch.
    late, b2run = [], []
    for cpu in sorted(cpus):
        rs = sorted(r for r in sw if r[1] == cpu)
        times = [r[0] for r in rs]
        k, used = -(-(max(t0, times[0]) - t0) // sl), set()
        while t0 + k * sl < hdr['now_sys_ns']:
            b = t0 + k * sl
            i = bisect.bisect_left(times, b - early)
            if i < len(rs) and i not in used:
                used.add(i)
                late.append((rs[i][0] - b) / 1e3)
                if rs[i][3]:
                    b2run.append((rs[i][3] - b) / 1e3)
            k += 1
    figs.dist('patched', 'ring', 'gang', 'gang', 'slot boundary to pass start (lateness)', late)
    figs.dist('patched', 'ring', 'gang', 'gang', 'slot boundary to switch done', b2run)


def xt_cost(rep, log, label, phase, sched, cpus, figs):
    """One scheduler's passes that switched, from Xen's trace buffers."""
    hdr = log['xt_hdr'].get(phase, {})
    recs = [r for r in log['xt'].get(phase, []) if r[0] == sched]
    khz = hdr.get('cpu_khz', 0)
    where = sorted({r[1] for r in recs})
    v2v = [r for r in recs if r[4] != IDLE and r[6] != IDLE and r[3] >= 0]
    if not rep.check(khz and v2v and set(where) <= cpus,
                     '%s/switch cost: xentrace in the %s phase recorded %s passes that switched'
                     ' from a vCPU to another (%d, switch done seen) on its pool\'s pCPUs only'
                     ' (%s, pool %s; TSC %s kHz; %s records lost)'
                     % (label, phase, sched, len(v2v), where, sorted(cpus), khz or '?',
                        hdr.get('lost', '?'))):
        return None
    us = 1e3 / khz
    return [figs.dist(label, 'xentrace', sched, phase, what, [f(r) * us for r in rs])
            for what, f, rs in xt_metrics(recs, v2v)]


def xt_metrics(recs, v2v):
    """What the xentrace figures are: (name, cycles of a record, records)."""
    return (('decision (all switches)', lambda r: r[2], recs),
            ('decision (vCPU to vCPU)', lambda r: r[2], v2v),
            ('pass start to switch done (vCPU to vCPU)', lambda r: r[3], v2v),
            ('core switch, decision to switch done (vCPU to vCPU)', lambda r: r[3] - r[2], v2v))


def switch_cost(rep, log, label, figs):
    """What a context switch costs: figures from one boot, none compared
    with a bound (under TCG they follow the host's load).  Checked only
    that the records exist where they must."""
    print('  %s switch cost (TCG: emulated CPU, absolute times slow; figures, not checked):' % label)
    if label == 'patched':
        ring_cost(rep, log, figs)
    c2 = xt_cost(rep, log, label, 'credit', 'credit2', log.get('pool0_cpus', set()), figs)
    if label == 'patched':
        gang = xt_cost(rep, log, label, 'gang', 'gang', log.get('gang_cpus', set()), figs)
        if c2 and gang:
            for i, (what, f, rs) in enumerate(xt_metrics([], [])):
                figs.ratio(label, 'xentrace', what, gang[i], c2[i])
    # In the guests: how long a spinning vCPU was off its pCPU each time
    # (gaps > 1 ms): the scheduler's time slices and the host's, not the
    # switch alone; in the gang phase, a gap over the other guest's slot
    # less the slot is what the two slot switches added.
    gaps = {}
    for phase in ('credit', 'gang') if label == 'patched' else ('credit',):
        gaps[phase] = [b - a for g in log['phases'].get(phase, {}).values()
                       if 'start_rt' in g for v in range(g['nvcpu']) for a, b in gap_list(g, v)]
        figs.dist(label, 'in-guest', 'credit2' if phase == 'credit' else 'gang', phase,
                  'off-CPU gap > 1 ms', gaps[phase])
    sl = log['table'].get('slot_ns', 0) // 1000
    if label == 'patched' and sl:
        figs.dist(label, 'in-guest', 'gang', 'gang', 'off-CPU gap over a foreign slot minus the slot',
                  [d - sl for d in gaps['gang'] if sl // 2 <= d < sl * 3 // 2])
    for d in log['dom0']:
        if d.startswith('xentrace '):
            print('  %s: %s' % (label, d))


def check_untouched(rep, pdir):
    touched = set()
    for p in sorted(os.listdir(pdir)):
        if p.endswith('.patch'):
            with open(os.path.join(pdir, p)) as f:
                touched |= set(re.findall(r'^diff --git a/(\S+)', f.read(), re.M))
    core = [f for f in touched if re.search(
        r'sched/(credit2?|core|cpupool|rt|null|arinc653)\.c$|sched/private\.h$', f)]
    print('  series touches: %s' % ' '.join(sorted(touched)))
    rep.check(not core, 'unchanged: the series does not modify the default schedulers '
              'or the scheduling core%s' % (' (it does: %s)' % core if core else ''))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--patched')
    ap.add_argument('--unpatched')
    ap.add_argument('--patches')
    a = ap.parse_args()
    rep = Report()
    credit = {}
    cost = Figures()
    for label, path in (('unpatched', a.unpatched), ('patched', a.patched)):
        if not path:
            continue
        print('%s (%s):' % (label, path))
        if not rep.check(os.path.exists(path), '%s: console log exists' % label):
            continue
        log = parse(path)
        rep.check(log['end'] == 0, '%s: dom0 script finished (END rc=%s)' % (label, log['end']))
        for d in log['dom0']:
            if d.startswith('FAIL'):
                print('  dom0: %s' % d)
        offs = {}
        if label == 'patched':
            for n in sorted(log['domid']):
                o, k, nb, ch = estimate_offset(log, n)
                offs[n] = o
                base = log['table'].get('wall_base_ns', 0) // 1000
                rep.check(o is not None and k >= OFFSET_MATCH_MIN and k >= 2 * ch,
                          'patched: %s clock related to Xen system time: its CLOCK_REALTIME is'
                          ' Xen wallclock %s s, %d of %d long gaps matched to hypervisor switch-ins'
                          ' (>= %d, and >= 2 x %d at offsets 6-94 ms away)'
                          % (n, '%+.6f' % ((o - base) / 1e6) if o is not None else '?', k, nb,
                             OFFSET_MATCH_MIN, ch))
        credit[label] = (log['pool0_sched'], check_share(rep, log, 'credit', label, offs))
        if label == 'patched':
            if check_share(rep, log, 'rr', label, offs):
                check_trace_rr(rep, log)
            check_gang(rep, log, offs)
            check_share(rep, log, 'cleared', label, offs)
        switch_cost(rep, log, label, cost)
    if a.patches:
        print('unchanged default scheduler:')
        check_untouched(rep, a.patches)
    # Each hypervisor is judged within its own boot: two TCG boots minutes
    # apart see different host loads, so their absolute figures are only
    # reported side by side.
    for label, (sched, m) in credit.items():
        xen = m and m.get('xen')
        rep.check(sched == SCHED_CREDIT2 and xen and xen['fair'] >= FAIR_MIN,
                  'unchanged: %s: Pool-0 runs credit2 (sched_id %s, want %d) and shared its pCPUs'
                  ' fairly among the four spinning guest vCPUs in the credit phase (Xen\'s run'
                  ' time, least / largest %s >= %.2f)'
                  % (label, sched, SCHED_CREDIT2, '%.3f' % xen['fair'] if xen else '?', FAIR_MIN))
    figs = []
    for label, (sched, m) in credit.items():
        if m:
            fr = [f for n in m['names'] for f in m['g'][n]['frac']]
            figs.append('%s: in-guest %.3f, Xen %s' % (label, sum(fr) / len(fr), '%.3f' % m['xen']['mean']
                                                       if m.get('xen') else '?'))
    if figs:
        print('  credit phase, mean vCPU run fraction (reported, not compared across boots: the'
              ' in-guest figure follows the host\'s load): %s' % '; '.join(figs))
    if cost.rows:
        out = os.path.join(os.path.dirname(os.path.abspath(a.patched or a.unpatched)),
                           'switch-cost.csv')
        cost.write(out)
        print('switch cost figures: %s' % out)
    print('boot-test: %s' % ('PASS' if rep.ok else 'FAIL'))
    return 0 if rep.ok else 1


if __name__ == '__main__':
    sys.exit(main())
