/* SPDX-License-Identifier: BSD-3-Clause */
/* Small helpers shared by every program: time, parsing, files. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"

int64_t hec_now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t hec_now_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int hec_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Split on ':' into at most 3 non-negative numbers; returns count or -EINVAL. */
static int parse_colon_fields(const char *s, long *f)
{
	int n = 0;

	for (;;) {
		char *end;

		if (n == 3 || !isdigit((unsigned char)*s))
			return -EINVAL;
		errno = 0;
		f[n++] = strtol(s, &end, 10);
		if (errno || f[n - 1] > 100000000L)
			return -EINVAL;
		if (!*end)
			return n;
		if (*end != ':')
			return -EINVAL;
		s = end + 1;
	}
}

int hec_parse_time_limit(const char *s, long *secs)
{
	long days = 0, f[3] = { 0, 0, 0 }, total;
	const char *dash;
	int n;

	if (!s || !*s)
		return -EINVAL;
	if (!strcasecmp(s, "UNLIMITED") || !strcasecmp(s, "infinite") || !strcmp(s, "0")) {
		*secs = 0;
		return 0;
	}
	dash = strchr(s, '-');
	if (dash) {
		char dbuf[16];
		size_t dl = (size_t)(dash - s);

		if (dl == 0 || dl >= sizeof(dbuf))
			return -EINVAL;
		memcpy(dbuf, s, dl);
		dbuf[dl] = 0;
		if (hec_parse_long(dbuf, 0, 100000, &days))
			return -EINVAL;
		n = parse_colon_fields(dash + 1, f);
		if (n < 0)
			return -EINVAL;
		/* D-H, D-H:M, D-H:M:S */
		total = days * 86400 + f[0] * 3600 + (n > 1 ? f[1] * 60 : 0) + (n > 2 ? f[2] : 0);
		if (n > 1 && f[1] >= 60)
			return -EINVAL;
		if (n > 2 && f[2] >= 60)
			return -EINVAL;
	} else {
		n = parse_colon_fields(s, f);
		if (n < 0)
			return -EINVAL;
		/* M, M:S, H:M:S */
		if (n == 1)
			total = f[0] * 60;
		else if (n == 2)
			total = f[0] * 60 + f[1];
		else
			total = f[0] * 3600 + f[1] * 60 + f[2];
		if (n >= 2 && f[n - 1] >= 60)
			return -EINVAL;
		if (n == 3 && f[1] >= 60)
			return -EINVAL;
	}
	if (total > 365L * 86400)
		return -ERANGE;
	if (total == 0)
		return -EINVAL; /* "0:00" is no limit at all: say UNLIMITED */
	*secs = total;
	return 0;
}

int hec_parse_mem_mb(const char *s, long *mb)
{
	static const struct { char unit; long kib; } units[] = {
		{ 'K', 1 }, { 'M', 1024 }, { 'G', 1024L * 1024 }, { 'T', 1024L * 1024 * 1024 },
	};
	long kib = 1024, v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end) {
		size_t i;

		for (i = 0; i < HEC_ARRAY_SIZE(units); i++)
			if (toupper((unsigned char)*end) == units[i].unit)
				break;
		/* "2G" and "2GB" both read as gibibytes */
		if (i == HEC_ARRAY_SIZE(units) || (end[1] && (toupper((unsigned char)end[1]) != 'B' || end[2])))
			return -EINVAL;
		kib = units[i].kib;
	}
	if (v == 0 || v > (1L << 40) / kib)
		return -ERANGE;
	*mb = (v * kib + 1023) / 1024;
	if (*mb > 1L << 30)
		return -ERANGE;
	return 0;
}

void hec_format_duration(long secs, char *buf, size_t len)
{
	if (secs <= 0) {
		snprintf(buf, len, "%s", secs == 0 ? "UNLIMITED" : "INVALID");
		return;
	}
	if (secs >= 86400)
		snprintf(buf, len, "%ld-%02ld:%02ld:%02ld", secs / 86400, secs % 86400 / 3600,
			 secs % 3600 / 60, secs % 60);
	else
		snprintf(buf, len, "%02ld:%02ld:%02ld", secs / 3600, secs % 3600 / 60, secs % 60);
}

static void cpuset_set(struct hec_cpuset *set, int cpu)
{
	set->bits[cpu / 64] |= 1ULL << (cpu % 64);
}

static int cpuset_isset(const struct hec_cpuset *set, int cpu)
{
	return !!(set->bits[cpu / 64] & (1ULL << (cpu % 64)));
}

int hec_cpuset_parse(const char *s, struct hec_cpuset *set)
{
	memset(set, 0, sizeof(*set));
	if (!s)
		return -EINVAL;
	while (*s) {
		long lo, hi;
		char *end;

		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		lo = strtol(s, &end, 10);
		hi = lo;
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				return -EINVAL;
			hi = strtol(end + 1, &end, 10);
		}
		if (lo < 0 || hi >= HEC_MAX_CPUS || lo > hi)
			return -EINVAL;
		for (long c = lo; c <= hi; c++)
			cpuset_set(set, (int)c);
		if (*end == ',' && end[1])
			end++;
		else if (*end)
			return -EINVAL;
		s = end;
	}
	return hec_cpuset_count(set);
}

int hec_cpuset_count(const struct hec_cpuset *set)
{
	int n = 0;

	for (size_t i = 0; i < HEC_ARRAY_SIZE(set->bits); i++)
		n += __builtin_popcountll(set->bits[i]);
	return n;
}

int hec_cpuset_intersects(const struct hec_cpuset *a, const struct hec_cpuset *b)
{
	for (size_t i = 0; i < HEC_ARRAY_SIZE(a->bits); i++)
		if (a->bits[i] & b->bits[i])
			return 1;
	return 0;
}

int hec_cpuset_has(const struct hec_cpuset *set, int c)
{
	return c >= 0 && c < HEC_MAX_CPUS && (set->bits[c / 64] >> (c % 64) & 1);
}

void hec_cpuset_to_cpu_set(const struct hec_cpuset *set, cpu_set_t *out)
{
	CPU_ZERO(out);
	for (int c = 0; c < HEC_MAX_CPUS && c < CPU_SETSIZE; c++)
		if (hec_cpuset_has(set, c))
			CPU_SET(c, out);
}

int hec_cpuset_format(const struct hec_cpuset *set, char *buf, size_t len)
{
	size_t used = 0;

	if (!len)
		return -ENOSPC;
	buf[0] = 0;
	for (int c = 0; c < HEC_MAX_CPUS; c++) {
		int end = c, n;

		if (!cpuset_isset(set, c))
			continue;
		while (end + 1 < HEC_MAX_CPUS && cpuset_isset(set, end + 1))
			end++;
		if (end == c)
			n = snprintf(buf + used, len - used, "%s%d", used ? "," : "", c);
		else
			n = snprintf(buf + used, len - used, "%s%d-%d", used ? "," : "", c, end);
		if (n < 0 || (size_t)n >= len - used)
			return -ENOSPC;
		used += (size_t)n;
		c = end;
	}
	return 0;
}

int hec_fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int hec_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_and_close(int fd, const void *data, size_t len)
{
	int rc = hec_write_all(fd, data, len);

	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

int hec_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return write_and_close(fd, text, strlen(text));
}

int hec_create_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode)) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return write_and_close(fd, data, len);
}

int hec_read_file(const char *path, char *buf, size_t len)
{
	size_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (off + 1 < len) {
		ssize_t n = read(fd, buf + off, len - 1 - off);

		if (n < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = 0;
	if (off && buf[off - 1] == '\n')
		buf[off - 1] = 0;
	return 0;
}

int hec_user_groups(uid_t uid, gid_t gid, struct hec_groups *out)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = HEC_GROUPS_MAX;

	out->n = 1;
	out->g[0] = gid;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) || !res)
		return -ENOENT;
	/* (-1 when there are more: the first HEC_GROUPS_MAX are filled in) */
	if (getgrouplist(pw.pw_name, gid, out->g, &n) < 0)
		n = HEC_GROUPS_MAX;
	out->n = n > 0 ? n : 1;
	if (n <= 0)
		out->g[0] = gid;
	return 0;
}

int hec_become_user(uid_t uid, gid_t gid, const struct hec_groups *gr)
{
	if (setgroups(gr ? (size_t)gr->n : 0, gr ? gr->g : NULL) || setgid(gid) || setuid(uid))
		return -1;
	return 0;
}

int hec_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; ; p++) {
		if (*p == '/' || *p == 0) {
			char c = *p;

			*p = 0;
			if (mkdir(tmp, mode) && errno != EEXIST)
				return -errno;
			*p = c;
			if (!c)
				break;
		}
	}
	return 0;
}

int hec_random_hex(char *buf, size_t nbytes)
{
	unsigned char raw[128];
	size_t got = 0;

	if (nbytes > sizeof(raw))
		return -EINVAL;
	while (got < nbytes) {
		ssize_t n = getrandom(raw + got, nbytes - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < nbytes; i++)
		sprintf(buf + 2 * i, "%02x", raw[i]);
	return 0;
}

int hec_self_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n < 0)
		return -errno;
	if ((size_t)n >= len - 1)
		return -ENAMETOOLONG;
	buf[n] = 0;
	slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = 0;
	return 0;
}

int hec_name_ok(const char *name)
{
	size_t n = 0;

	if (!name || !*name || *name == '.' || *name == '-')
		return 0;
	for (const char *c = name; *c; c++, n++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return 0;
	return n <= HEC_NAME_MAX;
}

void hec_hash_hex(uint64_t h, char out[HEC_HASH_HEX])
{
	snprintf(out, HEC_HASH_HEX, "%016" PRIx64, h);
}

int hec_hash_parse(const char *hex, uint64_t *h)
{
	uint64_t v = 0;

	if (!hex || strlen(hex) != HEC_HASH_HEX - 1)
		return -EINVAL;
	for (const char *c = hex; *c; c++) {
		if (*c >= '0' && *c <= '9')
			v = v << 4 | (uint64_t)(*c - '0');
		else if (*c >= 'a' && *c <= 'f')
			v = v << 4 | (uint64_t)(*c - 'a' + 10);
		else
			return -EINVAL;
	}
	*h = v;
	return 0;
}

int hec_read_key(const char *path, char *key, size_t len, char *why, size_t whylen)
{
	char buf[1024], *b, *e;
	size_t n;
	int fd, rc;

	if (whylen)
		why[0] = 0;
	if (len)
		key[0] = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s", strerror(-rc));
		return rc;
	}
	for (n = 0, rc = 0; n < sizeof(buf) - 1;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = -errno;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (rc) {
		snprintf(why, whylen, "%s", strerror(-rc));
		return rc;
	}
	if (n == sizeof(buf) - 1 || memchr(buf, 0, n)) {
		snprintf(why, whylen, n == sizeof(buf) - 1 ? "larger than a key" : "not text");
		return -EINVAL;
	}
	buf[n] = 0;
	for (b = buf; *b && isspace((unsigned char)*b); b++)
		;
	for (e = b + strlen(b); e > b && isspace((unsigned char)e[-1]); e--)
		;
	*e = 0;
	if (b == e) {
		snprintf(why, whylen, "the file is empty");
		return -EINVAL;
	}
	if ((size_t)(e - b) >= len) {
		snprintf(why, whylen, "key longer than %zu characters", len ? len - 1 : 0);
		return -EINVAL;
	}
	for (const char *c = b; c < e; c++)
		if (*c < 0x20 || *c > 0x7e) {
			snprintf(why, whylen, "not text: a key is printable ASCII");
			return -EINVAL;
		}
	memcpy(key, b, (size_t)(e - b) + 1);
	return 0;
}

int hec_key_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

void hec_child_signals_default(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* "starttime" of /proc/PID/stat (field 22), 0 if gone or a zombie. */
unsigned long long hec_proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	int field;

	hec_fmt(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (hec_read_file(path, buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return 0;
	for (field = 3, p += 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		start = strtoull(p, NULL, 10);
	return start;
}
