/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * gangprobe - /init of the test guests of the gang scheduler boot test.
 *
 * Runs as pid 1 of a tiny PV Linux guest.  It talks to xenstore through
 * /dev/xen/xenbus (wire protocol, no library) and waits for commands that
 * dom0 writes to the guest's data/hec-cmd key: "SEQ PHASE DURATION_MS" or
 * "SEQ quit".  For a measurement it starts one spinning thread pinned to
 * each vCPU; a thread reads CLOCK_REALTIME (Xen wallclock + system time in
 * a PV guest, so the same clock in every guest and in dom0) in a loop and
 * records every gap longer than GAP_NS, i.e. every interval in which its
 * vCPU was not running.  The results go to the console (hvc0), which dom0's
 * xenconsoled logs:
 *
 *   HEC W NAME PHASE START_NS END_NS NVCPU    measurement window
 *   HEC G NAME PHASE VCPU FROM_US TO_US       a gap, relative to START_NS
 *   HEC E NAME PHASE NGAPS                     end of this measurement
 *
 * and data/hec-done is set to SEQ.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <public/io/xs_wire.h>

#define GAP_NS     1000000LL   /* 1 ms */
#define MAX_GAPS   30000
#define MAX_VCPUS  8

static int xb_fd = -1;
static uint32_t xb_req;

struct probe {
    pthread_t thr;
    int cpu;
    int64_t start, end;
    int ngaps;
    int64_t gap[MAX_GAPS][2];
};
static struct probe probes[MAX_VCPUS];
static pthread_barrier_t go;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int full_io(int write_it, void *buf, size_t len)
{
    char *p = buf;

    while ( len )
    {
        ssize_t n = write_it ? write(xb_fd, p, len) : read(xb_fd, p, len);

        if ( n < 0 && errno == EINTR )
            continue;
        if ( n <= 0 )
            return -1;
        p += n;
        len -= n;
    }
    return 0;
}

/* One xenstore request; the reply payload (NUL terminated) goes to out. */
static int xs_request(uint32_t type, const char *a, const char *b,
                      char *out, size_t outlen)
{
    char msg[sizeof(struct xsd_sockmsg) + 512];
    struct xsd_sockmsg *h = (struct xsd_sockmsg *)msg, reply;
    size_t la = strlen(a) + 1, lb = b ? strlen(b) : 0;
    char body[XENSTORE_PAYLOAD_MAX + 1];

    if ( la + lb > 512 )
        return -1;
    h->type = type;
    h->req_id = ++xb_req;
    h->tx_id = 0;
    h->len = la + lb;
    memcpy(msg + sizeof(*h), a, la);
    if ( lb )
        memcpy(msg + sizeof(*h) + la, b, lb);
    if ( full_io(1, msg, sizeof(*h) + h->len) )
        return -1;
    for ( ;; )
    {
        if ( full_io(0, &reply, sizeof(reply)) || reply.len > XENSTORE_PAYLOAD_MAX ||
             full_io(0, body, reply.len) )
            return -1;
        body[reply.len] = '\0';
        if ( reply.type != XS_WATCH_EVENT )
            break;
    }
    if ( reply.type == XS_ERROR )
        return -1;
    if ( out )
        snprintf(out, outlen, "%s", body);
    return 0;
}

static void *spin(void *arg)
{
    struct probe *p = arg;
    cpu_set_t set;
    int64_t last, t;

    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    if ( sched_setaffinity(0, sizeof(set), &set) )
        perror("gangprobe: sched_setaffinity");
    pthread_barrier_wait(&go);

    last = p->start;
    p->ngaps = 0;
    do {
        t = now_ns();
        if ( t - last > GAP_NS && p->ngaps < MAX_GAPS )
        {
            p->gap[p->ngaps][0] = last;
            p->gap[p->ngaps][1] = t;
            p->ngaps++;
        }
        last = t;
    } while ( t < p->end );

    return NULL;
}

static void measure(const char *name, const char *phase, long dur_ms, int nvcpu)
{
    int64_t start, end;
    int i, j, total = 0;

    pthread_barrier_init(&go, NULL, nvcpu + 1);
    for ( i = 0; i < nvcpu; i++ )
    {
        probes[i].cpu = i;
        probes[i].start = probes[i].end = INT64_MAX;
        pthread_create(&probes[i].thr, NULL, spin, &probes[i]);
    }
    /* The threads wait at the barrier; fix the window, then release them. */
    start = now_ns() + 20000000LL;
    end = start + dur_ms * 1000000LL;
    for ( i = 0; i < nvcpu; i++ )
    {
        probes[i].start = start;
        probes[i].end = end;
    }
    pthread_barrier_wait(&go);
    for ( i = 0; i < nvcpu; i++ )
        pthread_join(probes[i].thr, NULL);
    pthread_barrier_destroy(&go);

    printf("HEC W %s %s %lld %lld %d\n", name, phase, (long long)start,
           (long long)end, nvcpu);
    for ( i = 0; i < nvcpu; i++ )
        for ( j = 0; j < probes[i].ngaps; j++, total++ )
        {
            int64_t a = probes[i].gap[j][0] - start, b = probes[i].gap[j][1] - start;

            /* The first gap starts before the window (threads still waking). */
            if ( a < 0 )
                a = 0;
            printf("HEC G %s %s %d %lld %lld\n", name, phase, i,
                   (long long)(a / 1000), (long long)(b / 1000));
        }
    printf("HEC E %s %s %d\n", name, phase, total);
    fflush(stdout);
}

int main(void)
{
    char name[64] = "?", cmd[256], last[256] = "", phase[64];
    int fd, nvcpu;
    long seq, dur;

    mkdir("/dev", 0755);
    mkdir("/proc", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    mkdir("/sys", 0755);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    fd = open("/dev/console", O_RDWR);
    if ( fd >= 0 )
    {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    nvcpu = sysconf(_SC_NPROCESSORS_ONLN);
    if ( nvcpu > MAX_VCPUS )
        nvcpu = MAX_VCPUS;

    for ( int tries = 0; xb_fd < 0 && tries < 100; tries++ )
    {
        xb_fd = open("/dev/xen/xenbus", O_RDWR);
        if ( xb_fd < 0 )
            usleep(100000);
    }
    if ( xb_fd < 0 || xs_request(XS_READ, "name", NULL, name, sizeof(name)) )
    {
        printf("HEC X gangprobe: no xenstore (%s)\n", strerror(errno));
        fflush(stdout);
        for ( ;; )
            pause();
    }
    xs_request(XS_WRITE, "data/hec-ready", "1", NULL, 0);
    {
        char cs[64] = "?";
        FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");

        if ( f )
        {
            if ( fscanf(f, "%63s", cs) != 1 )
                strcpy(cs, "?");
            fclose(f);
        }
        printf("HEC R %s ready, %d vcpus, clocksource %s\n", name, nvcpu, cs);
    }
    fflush(stdout);

    for ( ;; )
    {
        if ( xs_request(XS_READ, "data/hec-cmd", NULL, cmd, sizeof(cmd)) ||
             !strcmp(cmd, last) )
        {
            usleep(50000);
            continue;
        }
        snprintf(last, sizeof(last), "%s", cmd);
        if ( sscanf(cmd, "%ld %63s %ld", &seq, phase, &dur) >= 2 &&
             !strcmp(phase, "quit") )
            break;
        if ( sscanf(cmd, "%ld %63s %ld", &seq, phase, &dur) == 3 )
            measure(name, phase, dur, nvcpu);
        xs_request(XS_WRITE, "data/hec-done", cmd, NULL, 0);
    }

    printf("HEC Q %s\n", name);
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
