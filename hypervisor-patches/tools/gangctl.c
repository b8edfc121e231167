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
 *        trace: "T TIME_NS PCPU DOMID VCPU" per switch (Xen system time)
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

static void privcmd_open(void)
{
    if ( privcmd_fd < 0 )
    {
        privcmd_fd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
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
        printf("T %" PRId64 " %u %u %u\n", (int64_t)tracebuf[i].time,
               tracebuf[i].cpu, tracebuf[i].domid, tracebuf[i].vcpu);
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
            "       clear POOL | get POOL | trace POOL | vcpu-time DOMID...\n");
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
    if ( !strcmp(argv[1], "vcpu-time") && argc >= 3 )
        return cmd_vcpu_time(argc - 2, argv + 2);

    return usage();
}
