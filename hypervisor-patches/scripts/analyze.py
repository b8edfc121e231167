#!/usr/bin/env python3
"""Check the console logs of the gang scheduler boot test.

  analyze.py [--patched LOG] [--unpatched LOG] [--patches DIR]

Reads the gangprobe records (HEC W/G/E, see guest/gangprobe.c) and the
dom0 records (HEC-DOM0) of each log, rebuilds every vCPU's run intervals
(measurement window minus the gaps it saw) on the common CLOCK_REALTIME
timeline (Xen wallclock in both guests and dom0) and checks:

  gang     (table: 2 slots, gA | gB): each guest's vCPUs ran together, only
           inside the guest's own slots (boundaries from t0 and the slot
           length that the hypervisor reported), never overlapping the other
           guest, and got a fair share of their slots;
  credit   (Pool-0, default scheduler, no table), rr and cleared (gang pool
           without a table): ordinary time sharing: both guests progress and
           overlap in time, i.e. no gang behaviour without a table;
  unchanged: the series does not touch the default schedulers or the
           scheduling core, and the credit phase of the patched and the
           unpatched hypervisor look alike.

Prints one line per check and a final "boot-test: PASS" or "boot-test: FAIL";
exit status 0 or 1.
"""
import argparse
import os
import re
import sys

TOL_US = 2000            # slot edge tolerance (timer slop, TCG, clock read)
GANG_OUTSIDE_MAX = 0.02  # run time outside own slots, fraction of run time
GANG_TOGETHER_MIN = 0.90
GANG_OVERLAP_MAX = 0.02
GANG_FRAC_MIN = 0.25     # each vCPU: run time / window (ideal 0.5)
GANG_COVER_MIN = 0.60    # all vCPUs running / own slot time (ideal 1)
SHARE_FRAC_MIN = 0.10
SHARE_OVERLAP_MIN = 0.20
SAME_FRAC_DIFF = 0.20


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
KV = re.compile(r'(\w+)=(-?\d+)')


def parse(path):
    log = {'phases': {}, 'dom0': [], 'domid': {}, 'table': {}, 'stats': {},
           'slots': {}, 'end': None}
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8', 'replace')
    for line in text.splitlines():
        line = line.replace('\r', '')
        m = REC.search(line)
        if m:
            kind, name, phase, rest = m.groups()
            ph = log['phases'].setdefault(phase, {})
            g = ph.setdefault(name, {'gaps': {}, 'ended': False})
            f = rest.split()
            if kind == 'W':
                g['start'], g['end'], g['nvcpu'] = int(f[0]) // 1000, int(f[1]) // 1000, int(f[2])
            elif kind == 'G':
                g['gaps'].setdefault(int(f[0]), []).append([int(f[1]), int(f[2])])
            else:
                g['ended'] = True
            continue
        i = line.find('HEC-DOM0 ')
        if i < 0:
            continue
        d = line[i + 9:]
        log['dom0'].append(d)
        if d.startswith('domid '):
            log['domid'] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', d)}
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


def runs(g):
    """Run intervals (absolute us) of each vCPU of a guest in a phase."""
    w = [[g['start'], g['end']]]
    return {v: minus(w, norm([[g['start'] + a, g['start'] + b]
                              for a, b in g['gaps'].get(v, [])]))
            for v in range(g['nvcpu'])}


# ---- checks ------------------------------------------------------------------

class Report:
    def __init__(self):
        self.ok = True

    def check(self, cond, what):
        print('  %-4s %s' % ('ok' if cond else 'FAIL', what))
        self.ok &= bool(cond)
        return cond


def phase_metrics(ph, lo=None):
    """Common window, per-guest runs and overlap of a phase with 2 guests."""
    names = sorted(ph)
    start = max(ph[n]['start'] for n in names)
    end = min(ph[n]['end'] for n in names)
    if lo is not None:
        start = max(start, lo)
    win = [[start, end]]
    m = {'win': win, 'len': max(end - start, 1), 'g': {}}
    for n in names:
        r = {v: inter(iv, win) for v, iv in runs(ph[n]).items()}
        anyr = union(*r.values())
        allr = r[0]
        for v in r:
            allr = inter(allr, r[v])
        m['g'][n] = {'runs': r, 'any': anyr, 'all': allr,
                     'frac': [total(r[v]) / m['len'] for v in sorted(r)],
                     'together': total(allr) / max(total(anyr), 1)}
    a, b = (m['g'][n]['any'] for n in names)
    m['overlap'] = total(inter(a, b)) / max(min(total(a), total(b)), 1)
    m['names'] = names
    return m


def show(m, label):
    for n in m['names']:
        g = m['g'][n]
        print('  %s %s: window %.2f s, run fraction per vCPU %s, together %.3f'
              % (label, n, m['len'] / 1e6, ' '.join('%.3f' % f for f in g['frac']),
                 g['together']))
    print('  %s overlap of the two guests: %.3f of the smaller run time'
          % (label, m['overlap']))


def complete(rep, log, phase, label):
    ph = log['phases'].get(phase, {})
    ok = (len(ph) == 2 and all(g.get('ended') and 'start' in g for g in ph.values())
          and all(g['nvcpu'] == 2 for g in ph.values()))
    rep.check(ok, '%s: phase "%s" measured in both guests (2 vCPUs each)' % (label, phase))
    return ok


def check_share(rep, log, phase, label):
    if not complete(rep, log, phase, label):
        return None
    m = phase_metrics(log['phases'][phase])
    show(m, '%s/%s' % (label, phase))
    rep.check(all(f >= SHARE_FRAC_MIN for n in m['names'] for f in m['g'][n]['frac']),
              '%s/%s: every vCPU progressed (>= %.2f of the window)' % (label, phase, SHARE_FRAC_MIN))
    rep.check(m['overlap'] >= SHARE_OVERLAP_MIN,
              '%s/%s: the guests ran at the same time (overlap %.3f >= %.2f), no gang behaviour'
              % (label, phase, m['overlap'], SHARE_OVERLAP_MIN))
    return m


def check_gang(rep, log):
    label = 'patched/gang'
    if not complete(rep, log, 'gang', 'patched'):
        return
    t, dom = log['table'], log['domid']
    if not rep.check(t.get('slots') == 2 and t.get('slot_ns') and 't0_wall_ns' in t
                     and len(log['slots']) == 2,
                     '%s: table read back from the hypervisor (2 slots)' % label):
        return
    slot_us = t['slot_ns'] // 1000
    t0_us = t['t0_wall_ns'] // 1000
    print('  %s: slot %d ms, t0 (Xen wallclock) %d ns, slots %s, domids %s'
          % (label, slot_us // 1000, t['t0_wall_ns'], log['slots'], dom))
    if 'dom0_realtime_ns' in t:
        print('  %s: dom0 CLOCK_REALTIME - Xen wallclock = %.1f us (incl. hypercall)'
              % (label, (t['dom0_realtime_ns'] - t['now_wall_ns']) / 1e3))
    m = phase_metrics(log['phases']['gang'], lo=t0_us)
    show(m, label)
    start, end = m['win'][0]
    for n in m['names']:
        g = m['g'][n]
        own = [s for s, doms in log['slots'].items() if dom.get(n) in doms]
        k0 = (start - t0_us) // slot_us
        slots = [[t0_us + k * slot_us, t0_us + (k + 1) * slot_us]
                 for k in range(k0, (end - t0_us) // slot_us + 1) if k % 2 in own]
        mine = inter(norm(slots), m['win'])
        wide = norm([[a - TOL_US, b + TOL_US] for a, b in slots])
        outside = total(minus(g['any'], wide)) / max(total(g['any']), 1)
        strict = total(minus(g['any'], mine)) / max(total(g['any']), 1)
        cover = total(inter(g['all'], mine)) / max(total(mine), 1)
        print('  %s %s: owns slot(s) %s; run time outside own slots %.4f (%.4f without the'
              ' %d us edge tolerance); all vCPUs ran %.3f of own slot time'
              % (label, n, own, outside, strict, TOL_US, cover))
        rep.check(own and outside <= GANG_OUTSIDE_MAX,
                  '%s %s ran only in its slots (outside %.4f <= %.2f)' % (label, n, outside, GANG_OUTSIDE_MAX))
        rep.check(g['together'] >= GANG_TOGETHER_MIN,
                  '%s %s: its vCPUs ran together (%.3f >= %.2f)' % (label, n, g['together'], GANG_TOGETHER_MIN))
        rep.check(min(g['frac']) >= GANG_FRAC_MIN and cover >= GANG_COVER_MIN,
                  '%s %s: got its slots (min vCPU fraction %.3f >= %.2f, own-slot cover %.3f >= %.2f)'
                  % (label, n, min(g['frac']), GANG_FRAC_MIN, cover, GANG_COVER_MIN))
    rep.check(m['overlap'] <= GANG_OVERLAP_MAX,
              '%s: the guests never ran at the same time (overlap %.4f <= %.2f)'
              % (label, m['overlap'], GANG_OVERLAP_MAX))
    s = log['stats']
    if s:
        print('  %s: hypervisor: %d slot boundaries crossed by the pool\'s pCPUs, '
              'reschedule late by %.1f us on average, %.1f us at most'
              % (label, s.get('boundaries', 0), s.get('late_avg_ns', 0) / 1e3,
                 s.get('late_max_ns', 0) / 1e3))
        rep.check(s.get('boundaries', 0) > 0, '%s: the hypervisor counted slot boundaries' % label)


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
        credit[label] = check_share(rep, log, 'credit', label)
        if label == 'patched':
            check_share(rep, log, 'rr', label)
            check_gang(rep, log)
            check_share(rep, log, 'cleared', label)
    if a.patches:
        print('unchanged default scheduler:')
        check_untouched(rep, a.patches)
        if credit.get('patched') and credit.get('unpatched'):
            fp = [f for n in credit['patched']['names'] for f in credit['patched']['g'][n]['frac']]
            fu = [f for n in credit['unpatched']['names'] for f in credit['unpatched']['g'][n]['frac']]
            mp, mu = sum(fp) / len(fp), sum(fu) / len(fu)
            rep.check(abs(mp - mu) <= SAME_FRAC_DIFF,
                      'unchanged: credit phase, mean vCPU run fraction patched %.3f vs unpatched '
                      '%.3f (|diff| <= %.2f); overlap %.3f vs %.3f'
                      % (mp, mu, SAME_FRAC_DIFF, credit['patched']['overlap'],
                         credit['unpatched']['overlap']))
    print('boot-test: %s' % ('PASS' if rep.ok else 'FAIL'))
    return 0 if rep.ok else 1


if __name__ == '__main__':
    sys.exit(main())
