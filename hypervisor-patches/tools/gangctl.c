/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * gangctl - drive the Xen gang scheduler (hypervisor-patches/xen-4.17) from
 * dom0: cpupool set-up and the slot table.
 *
 * It issues XEN_SYSCTL_cpupool_op and XEN_SYSCTL_scheduler_op directly
 * through /dev/xen/privcmd (IOCTL_PRIVCMD_HYPERCALL), so it needs neither
 * a rebuilt libxenctrl nor any library: it is built statically against
 * the public headers of the patched tree and runs in any PV dom0.
 *
 *   gangctl pool-create                 create a gang cpupool, print its id
 *   gangctl pool-info POOL              print scheduler id, cpus, n_dom
 *   gangctl cpu-move CPU FROM TO        move a pCPU between pools
 *   gangctl dom-move DOMID POOL         move a domain into a pool
 *   gangctl set POOL SLOT_MS T0 D[,D..] [D[,D..]..]
 *        install a table: one argument per slot, domids separated by
 *        commas, "-" for an empty slot.  T0 is the time base: "now",
 *        "sys:NS" (Xen system time), "wall:NS" (Xen wallclock, UNIX ns)
 *        or "next:SEC" (next multiple of SEC seconds of Xen wallclock that
 *        is at least one second away; what a node agent would use).
 *   gangctl clear POOL                  remove the table
 *   gangctl get POOL                    print the table and statistics
 *   gangctl trace POOL                  print and clear the context switch
 *        trace: "T TIME_NS PCPU DOMID VCPU DECIDED_NS SWITCHED_NS" per
 *        switch (Xen system time: start of the scheduling pass, end of the
 *        scheduler's decision, context switch done; SWITCHED_NS 0 if the
 *        scheduler did not see the end)
 *   gangctl xt FILE [SCHED]             the scheduling passes that switched,
 *        from a xentrace(8) file taken with -e 0x0002a000 (any Xen 4.17
 *        with credit2 or the gang scheduler), those of SCHED (credit2 or
 *        gang) only if given: per switch "X SCHED PCPU DECIDE_CYC DONE_CYC
 *        PREVDOM PREVVCPU NEXTDOM NEXTVCPU" (TSC cycles from the start of
 *        the pass, see cmd_xt; DONE_CYC -1 if not seen), then "xt
 *        cpu_khz=KHZ ..." (TSC rate, from XEN_SYSCTL_physinfo; records
 *        lost by Xen when xentrace did not drain its buffers in time)
 *   gangctl vcpu-time DOMID...          Xen's run time of every vCPU of the
 *        domains (the runstate accounting of whatever scheduler runs them):
 *        "vcpu-time mono_ns=NS" (dom0 CLOCK_MONOTONIC, Xen's rate), then
 *        "V DOMID VCPU CPU_TIME_NS PCPU" per vCPU; works on any Xen 4.17
 *
 * Exit status: 0 ok, 1 hypercall failed, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define __XEN_TOOLS__ 1
#include <public/xen.h>
#include <public/sysctl.h>
#include <public/domctl.h>
#include <public/trace.h>

/* Linux include/uapi/xen/privcmd.h */
struct privcmd_hypercall {
    uint64_t op;
    uint64_t arg[5];
};
#define IOCTL_PRIVCMD_HYPERCALL \
    _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall))

/* Hypercall buffers: page aligned and locked, so Xen can copy them. */
static union {
    struct xen_sysctl sysctl;
    char pad[4096];
} sysbuf __attribute__((aligned(4096)));
static union {
    struct xen_domctl domctl;
    char pad[4096];
} dombuf __attribute__((aligned(4096)));
static union {
    struct xen_sysctl_gang_schedule table;
    char pad[8192];
} tabbuf __attribute__((aligned(4096)));
static uint8_t mapbuf[4096] __attribute__((aligned(4096)));
#define TRACE_MAX 8192
static struct xen_sysctl_gang_trace tracebuf[TRACE_MAX] __attribute__((aligned(4096)));

static int privcmd_fd = -1;
static int privcmd_fd_optional;  /* no privcmd: hypercalls fail, no exit */

static void privcmd_open(void)
{
    if ( privcmd_fd < 0 )
    {
        privcmd_fd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
        if ( privcmd_fd < 0 && privcmd_fd_optional )
            return;
        if ( privcmd_fd < 0 )
        {
            perror("gangctl: /dev/xen/privcmd");
            exit(1);
        }
        if ( mlock(&sysbuf, sizeof(sysbuf)) || mlock(&dombuf, sizeof(dombuf)) ||
             mlock(&tabbuf, sizeof(tabbuf)) ||
             mlock(mapbuf, sizeof(mapbuf)) || mlock(tracebuf, sizeof(tracebuf)) )
            perror("gangctl: mlock");
    }
}

static int hypercall(uint64_t op, void *arg)
{
    struct privcmd_hypercall call = { 0 };
    int rc;

    privcmd_open();
    call.op = op;
    call.arg[0] = (uint64_t)(uintptr_t)arg;
    rc = ioctl(privcmd_fd, IOCTL_PRIVCMD_HYPERCALL, &call);
    return rc < 0 ? -errno : rc;
}

static int do_sysctl(uint32_t cmd)
{
    sysbuf.sysctl.cmd = cmd;
    sysbuf.sysctl.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
    return hypercall(__HYPERVISOR_sysctl, &sysbuf.sysctl);
}

/* XEN_DOMCTL_getvcpuinfo: 0, or -EINVAL/-ESRCH past the last vCPU. */
static int getvcpuinfo(uint32_t domid, uint32_t vcpu)
{
    struct xen_domctl *d = &dombuf.domctl;

    memset(&dombuf, 0, sizeof(dombuf));
    d->cmd = XEN_DOMCTL_getvcpuinfo;
    d->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    d->domain = domid;
    d->u.getvcpuinfo.vcpu = vcpu;
    return hypercall(__HYPERVISOR_domctl, d);
}

static void die_rc(const char *what, int rc)
{
    fprintf(stderr, "gangctl: %s: %s\n", what, strerror(-rc));
    exit(1);
}

static unsigned long num(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);

    if ( *s == '\0' || *end != '\0' )
    {
        fprintf(stderr, "gangctl: not a number: %s\n", s);
        exit(2);
    }
    return v;
}

static int cpupool_op(uint32_t op, uint32_t pool, uint32_t cpu, uint32_t domid,
                      uint32_t sched_id)
{
    struct xen_sysctl_cpupool_op *c = &sysbuf.sysctl.u.cpupool_op;

    memset(&sysbuf, 0, sizeof(sysbuf));
    c->op = op;
    c->cpupool_id = pool;
    c->cpu = cpu;
    c->domid = domid;
    c->sched_id = sched_id;
    if ( op == XEN_SYSCTL_CPUPOOL_OP_INFO )
    {
        memset(mapbuf, 0, sizeof(mapbuf));
        set_xen_guest_handle(c->cpumap.bitmap, mapbuf);
        c->cpumap.nr_bits = sizeof(mapbuf) * 8;
    }
    return do_sysctl(XEN_SYSCTL_cpupool_op);
}

static int sched_op(uint32_t pool, uint32_t cmd)
{
    struct xen_sysctl_scheduler_op *s = &sysbuf.sysctl.u.scheduler_op;

    memset(&sysbuf, 0, sizeof(sysbuf));
    s->cpupool_id = pool;
    s->sched_id = XEN_SCHEDULER_GANG;
    s->cmd = cmd;
    set_xen_guest_handle(s->u.sched_gang.schedule, &tabbuf.table);
    return do_sysctl(XEN_SYSCTL_scheduler_op);
}

static void get_table(uint32_t pool)
{
    int rc;

    memset(&tabbuf, 0, sizeof(tabbuf));
    rc = sched_op(pool, XEN_SYSCTL_SCHEDOP_getinfo);
    if ( rc )
        die_rc("getinfo", rc);
}

/* Parse "1,2" / "-" into a slot. */
static void parse_slot(const char *arg, unsigned int i)
{
    char *copy = strdup(arg), *tok, *save = NULL;
    unsigned int n = 0;

    if ( strcmp(arg, "-") )
        for ( tok = strtok_r(copy, ",", &save); tok;
              tok = strtok_r(NULL, ",", &save) )
        {
            if ( n == XEN_GANG_MAX_DOMS_PER_SLOT )
            {
                fprintf(stderr, "gangctl: too many domains in slot %u\n", i);
                exit(2);
            }
            tabbuf.table.slots[i].domains[n++] = num(tok);
        }
    tabbuf.table.slots[i].nr_domains = n;
    free(copy);
}

static int cmd_set(uint32_t pool, const char *slot_ms, const char *t0,
                   int nslots, char **slots)
{
    struct xen_sysctl_gang_schedule *t = &tabbuf.table;
    uint32_t mode;
    uint64_t t0_ns = 0;
    int i, rc;

    if ( nslots < 1 || nslots > XEN_GANG_MAX_SLOTS )
    {
        fprintf(stderr, "gangctl: 1..%d slots\n", XEN_GANG_MAX_SLOTS);
        return 2;
    }
    if ( !strcmp(t0, "now") )
        mode = XEN_GANG_T0_NOW;
    else if ( !strncmp(t0, "sys:", 4) )
    {
        mode = XEN_GANG_T0_SYSTIME;
        t0_ns = strtoull(t0 + 4, NULL, 0);
    }
    else if ( !strncmp(t0, "wall:", 5) )
    {
        mode = XEN_GANG_T0_WALLCLOCK;
        t0_ns = strtoull(t0 + 5, NULL, 0);
    }
    else if ( !strncmp(t0, "next:", 5) )
    {
        uint64_t q = num(t0 + 5) * 1000000000ULL, wall;

        if ( !q )
            return 2;
        get_table(pool);
        wall = t->wallclock_base_ns + t->now_ns + 1000000000ULL;
        mode = XEN_GANG_T0_WALLCLOCK;
        t0_ns = (wall + q - 1) / q * q;
    }
    else
    {
        fprintf(stderr, "gangctl: bad time base %s\n", t0);
        return 2;
    }

    memset(&tabbuf, 0, sizeof(tabbuf));
    t->slot_ns = num(slot_ms) * 1000000ULL;
    t->t0_mode = mode;
    t->t0_ns = t0_ns;
    t->nr_slots = nslots;
    for ( i = 0; i < nslots; i++ )
        parse_slot(slots[i], i);

    rc = sched_op(pool, XEN_SYSCTL_SCHEDOP_putinfo);
    if ( rc )
        die_rc("putinfo", rc);
    return 0;
}

static int cmd_get(uint32_t pool)
{
    const struct xen_sysctl_gang_schedule *t = &tabbuf.table;
    struct timespec ts;
    unsigned int i, j;

    get_table(pool);
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("gang pool=%u slots=%u slot_ns=%" PRIu64 " t0_wall_ns=%" PRIu64
           " t0_sys_ns=%" PRId64 "\n", pool, t->nr_slots, t->slot_ns,
           t->t0_ns, t->t0_systime_ns);
    printf("gang now_sys_ns=%" PRId64 " wall_base_ns=%" PRIu64
           " now_wall_ns=%" PRIu64 " dom0_realtime_ns=%" PRIu64 "\n",
           t->now_ns, t->wallclock_base_ns,
           t->wallclock_base_ns + t->now_ns,
           (uint64_t)(ts.tv_sec * 1000000000LL + ts.tv_nsec));
    printf("gang generation=%" PRIu64 " boundaries=%" PRIu64
           " late_avg_ns=%" PRIu64 " late_max_ns=%" PRIu64 "\n",
           t->generation, t->boundaries,
           t->boundaries ? t->late_sum_ns / t->boundaries : 0,
           t->late_max_ns);
    for ( i = 0; i < t->nr_slots; i++ )
    {
        printf("gang slot %u:", i);
        if ( !t->slots[i].nr_domains )
            printf(" -");
        for ( j = 0; j < t->slots[i].nr_domains; j++ )
            printf(" %u", t->slots[i].domains[j]);
        printf("\n");
    }
    return 0;
}

/* Print and clear the scheduler's context switch trace. */
static int cmd_trace(uint32_t pool)
{
    struct xen_sysctl_gang_schedule *t = &tabbuf.table;
    unsigned int i;
    int rc;

    memset(&tabbuf, 0, sizeof(tabbuf));
    memset(tracebuf, 0, sizeof(tracebuf));
    set_xen_guest_handle(t->trace, tracebuf);
    t->trace_max = TRACE_MAX;
    rc = sched_op(pool, XEN_SYSCTL_SCHEDOP_getinfo);
    if ( rc )
        die_rc("getinfo (trace)", rc);
    printf("gang trace pool=%u nr=%u lost=%" PRIu64 " now_sys_ns=%" PRId64 "\n",
           pool, t->trace_nr, t->trace_lost, t->now_ns);
    for ( i = 0; i < t->trace_nr && i < TRACE_MAX; i++ )
        printf("T %" PRId64 " %u %u %u %" PRId64 " %" PRId64 "\n",
               (int64_t)tracebuf[i].time, tracebuf[i].cpu, tracebuf[i].domid,
               tracebuf[i].vcpu, (int64_t)tracebuf[i].decided,
               (int64_t)tracebuf[i].switched);
    return 0;
}

/*
 * Scheduler trace records that time a scheduling pass, the same way for
 * credit2 and the gang scheduler (Xen's own tracepoints, so credit2 and
 * the scheduling core stay unchanged):
 *   start   TRC_CSCHED2_SCHEDULE at the top of csched2_schedule(), or
 *           TRC_GANG_SCHEDULE at the top of the gang scheduler's;
 *   decided TRC_SCHED_SWITCH, emitted by the core once the scheduler has
 *           chosen another unit (sched_switch_units());
 *   done    the scheduler's context_saved hook, called on the pCPU once the
 *           core has loaded the next vCPU's context: credit2's re-queues a
 *           preempted (still runnable) vCPU, TRC_CSCHED2_RUNQ_POS with its
 *           domain and vCPU; the gang scheduler's emits TRC_GANG_SAVED for
 *           every switch.  So for credit2 "done" is seen only where the
 *           vCPU switched from was runnable (a preemption).
 * Record ids as defined in xen/common/sched/credit2.c and gang.c.
 */
#define XT_C2_SCHEDULE  TRC_SCHED_CLASS_EVT(CSCHED2, 21)
#define XT_C2_RUNQ_POS  TRC_SCHED_CLASS_EVT(CSCHED2, 2)
#define XT_GANG_SCHED   TRC_SCHED_CLASS_EVT(GANG, 1)
#define XT_GANG_SAVED   TRC_SCHED_CLASS_EVT(GANG, 2)
#define XT_MAX_CPUS     64

struct xt_cpu {
    uint64_t start, decided;    /* TSC; start 0: no pass open */
    int gang, switched;
    uint32_t prev_dom, prev_vcpu, next_dom, next_vcpu;
};

static unsigned long xt_switches, xt_done;
static const char *xt_only;     /* print this scheduler's passes only */

static void xt_emit(unsigned int cpu, struct xt_cpu *c, int64_t done)
{
    const char *sched = c->gang ? "gang" : "credit2";

    if ( c->start && c->switched && (!xt_only || !strcmp(xt_only, sched)) )
    {
        printf("X %s %u %" PRIu64 " %" PRId64 " %u %u %u %u\n", sched, cpu,
               c->decided - c->start, done < 0 ? -1 : (int64_t)(done - c->start),
               c->prev_dom, c->prev_vcpu, c->next_dom, c->next_vcpu);
        xt_switches++;
        xt_done += done >= 0;
    }
    c->start = 0;
    c->switched = 0;
}

static int cmd_xt(const char *path, const char *only)
{
    static struct xt_cpu cpus[XT_MAX_CPUS];
    const struct xen_sysctl_physinfo *pi = &sysbuf.sysctl.u.physinfo;
    unsigned long records = 0, lost = 0, starts = 0;
    unsigned int cpu = 0, i;
    uint32_t hdr, d[7];
    FILE *f = fopen(path, "rb");
    int rc;

    if ( !f )
    {
        perror(path);
        return 1;
    }
    privcmd_fd_optional = 1;
    xt_only = only;
    memset(&sysbuf, 0, sizeof(sysbuf));
    rc = do_sysctl(XEN_SYSCTL_physinfo);
    if ( rc )   /* the records still print; cpu_khz=0 says the rate is unknown */
        fprintf(stderr, "gangctl: physinfo: %s\n", strerror(-rc));
    while ( fread(&hdr, sizeof(hdr), 1, f) == 1 )
    {
        uint32_t event = hdr & 0x0fffffff, extra = (hdr >> TRACE_EXTRA_SHIFT) & 7;
        uint64_t tsc = 0;
        struct xt_cpu *c;

        if ( hdr >> 31 )
        {
            uint32_t t[2];

            if ( fread(t, sizeof(t), 1, f) != 1 )
                break;
            tsc = ((uint64_t)t[1] << 32) | t[0];
        }
        if ( extra && fread(d, sizeof(uint32_t), extra, f) != extra )
            break;
        records++;
        if ( event == TRC_TRACE_CPU_CHANGE )
        {
            /* xentrace's header of a window of one pCPU's records */
            cpu = d[0] < XT_MAX_CPUS ? d[0] : 0;
            continue;
        }
        if ( event == TRC_LOST_RECORDS )
        {
            lost += extra ? d[0] : 1;
            /* the open pass on this pCPU may miss its records */
            cpus[cpu].start = 0;
            cpus[cpu].switched = 0;
            continue;
        }
        c = &cpus[cpu];
        if ( event == XT_C2_SCHEDULE || event == XT_GANG_SCHED )
        {
            xt_emit(cpu, c, -1);
            c->start = tsc;
            c->gang = event == XT_GANG_SCHED;
            starts++;
        }
        else if ( event == TRC_SCHED_SWITCH && extra == 4 && c->start && !c->switched )
        {
            c->decided = tsc;
            c->switched = 1;
            c->prev_dom = d[0];
            c->prev_vcpu = d[1];
            c->next_dom = d[2];
            c->next_vcpu = d[3];
        }
        else if ( c->switched &&
                  ((event == XT_C2_RUNQ_POS && !c->gang && extra >= 1 &&
                    (d[0] >> 16) == c->prev_dom && (d[0] & 0xffff) == c->prev_vcpu) ||
                   (event == XT_GANG_SAVED && c->gang && extra == 2 &&
                    d[0] == c->prev_dom && d[1] == c->prev_vcpu)) )
            xt_emit(cpu, c, tsc);
    }
    fclose(f);
    for ( i = 0; i < XT_MAX_CPUS; i++ )
        xt_emit(i, &cpus[i], -1);
    printf("xt cpu_khz=%u records=%lu lost=%lu passes=%lu switches=%lu done=%lu\n",
           pi->cpu_khz, records, lost, starts, xt_switches, xt_done);
    return 0;
}

/*
 * Every vCPU's run time as Xen accounts it.  Under TCG this is host wall
 * time in which the scheduler had the vCPU on a pCPU, however much host CPU
 * QEMU got meanwhile: shares of it do not depend on the host's load.
 */
static int cmd_vcpu_time(int ndoms, char **doms)
{
    const struct xen_domctl_getvcpuinfo *v = &dombuf.domctl.u.getvcpuinfo;
    struct timespec ts;
    uint32_t vcpu;
    int i, rc;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    printf("vcpu-time mono_ns=%" PRId64 "\n",
           (int64_t)(ts.tv_sec * 1000000000LL + ts.tv_nsec));
    for ( i = 0; i < ndoms; i++ )
    {
        uint32_t domid = num(doms[i]);

        for ( vcpu = 0; vcpu < XEN_LEGACY_MAX_VCPUS; vcpu++ )
        {
            rc = getvcpuinfo(domid, vcpu);
            if ( rc == -EINVAL || rc == -ESRCH )
                break;
            if ( rc )
                die_rc("getvcpuinfo", rc);
            printf("V %u %u %" PRIu64 " %u\n", domid, vcpu,
                   (uint64_t)v->cpu_time, v->cpu);
        }
        if ( !vcpu )
        {
            fprintf(stderr, "gangctl: domain %u: no vCPU info\n", domid);
            return 1;
        }
    }
    return 0;
}

static int cmd_pool_info(uint32_t pool)
{
    const struct xen_sysctl_cpupool_op *c = &sysbuf.sysctl.u.cpupool_op;
    unsigned int cpu;
    int rc = cpupool_op(XEN_SYSCTL_CPUPOOL_OP_INFO, pool, 0, 0, 0);

    if ( rc )
        die_rc("cpupool info", rc);
    printf("pool=%u sched_id=%u n_dom=%u cpus=", c->cpupool_id, c->sched_id,
           c->n_dom);
    for ( cpu = 0; cpu < sizeof(mapbuf) * 8; cpu++ )
        if ( mapbuf[cpu / 8] & (1u << (cpu % 8)) )
            printf("%u,", cpu);
    printf("\n");
    return 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: gangctl pool-create | pool-info POOL | cpu-move CPU FROM TO |\n"
            "       dom-move DOMID POOL | set POOL SLOT_MS T0 SLOT... |\n"
            "       clear POOL | get POOL | trace POOL | vcpu-time DOMID... |\n"
            "       xt FILE [credit2|gang]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int rc;

    if ( argc < 2 )
        return usage();

    if ( !strcmp(argv[1], "pool-create") && argc == 2 )
    {
        rc = cpupool_op(XEN_SYSCTL_CPUPOOL_OP_CREATE,
                        XEN_SYSCTL_CPUPOOL_PAR_ANY, 0, 0, XEN_SCHEDULER_GANG);
        if ( rc )
            die_rc("cpupool create", rc);
        printf("%u\n", sysbuf.sysctl.u.cpupool_op.cpupool_id);
        return 0;
    }
    if ( !strcmp(argv[1], "pool-info") && argc == 3 )
        return cmd_pool_info(num(argv[2]));
    if ( !strcmp(argv[1], "cpu-move") && argc == 5 )
    {
        uint32_t cpu = num(argv[2]);
        int tries = 0;

        /*
         * Xen answers -EAGAIN while the CPU cannot leave its pool yet (a
         * vCPU or tasklet still on it, the removal continuing in the
         * background): ask again, as the toolstack does.
         */
        while ( (rc = cpupool_op(XEN_SYSCTL_CPUPOOL_OP_RMCPU, num(argv[3]), cpu, 0,
                                 0)) == -EAGAIN && ++tries < 100 )
            usleep(50000);
        if ( rc )
            die_rc("cpupool rmcpu", rc);
        if ( strcmp(argv[4], "none") )
        {
            rc = cpupool_op(XEN_SYSCTL_CPUPOOL_OP_ADDCPU, num(argv[4]), cpu,
                            0, 0);
            if ( rc )
                die_rc("cpupool addcpu", rc);
        }
        return 0;
    }
    if ( !strcmp(argv[1], "dom-move") && argc == 4 )
    {
        rc = cpupool_op(XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, num(argv[3]), 0,
                        num(argv[2]), 0);
        if ( rc )
            die_rc("cpupool movedomain", rc);
        return 0;
    }
    if ( !strcmp(argv[1], "set") && argc >= 6 )
        return cmd_set(num(argv[2]), argv[3], argv[4], argc - 5, argv + 5);
    if ( !strcmp(argv[1], "clear") && argc == 3 )
    {
        memset(&tabbuf, 0, sizeof(tabbuf));
        rc = sched_op(num(argv[2]), XEN_SYSCTL_SCHEDOP_putinfo);
        if ( rc )
            die_rc("putinfo", rc);
        return 0;
    }
    if ( !strcmp(argv[1], "get") && argc == 3 )
        return cmd_get(num(argv[2]));
    if ( !strcmp(argv[1], "trace") && argc == 3 )
        return cmd_trace(num(argv[2]));
    if ( !strcmp(argv[1], "xt") && (argc == 3 || argc == 4) )
        return cmd_xt(argv[2], argc == 4 ? argv[3] : NULL);
    if ( !strcmp(argv[1], "vcpu-time") && argc >= 3 )
        return cmd_vcpu_time(argc - 2, argv + 2);

    return usage();
}
