/* SPDX-License-Identifier: BSD-3-Clause */
/* One-line log records on stderr; daemons' stderr is their log file. */
#include "config.h"

#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"

static const char *log_prog = "hec";
static enum hec_log_level log_level = HEC_LOG_INFO;

void hec_log_init(const char *prog, enum hec_log_level level)
{
	log_prog = prog;
	log_level = level;
}

static void log_line(enum hec_log_level level, const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void log_line(enum hec_log_level level, const char *prefix, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, log_prog, (int)getpid(), names[level]);
	if (prefix)
		n += snprintf(line + n, sizeof(line) - n, "%s", prefix);
	if (n < (int)sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* Keep a record on one line even if a message carries a newline, and
	 * a user's string (a job's command) from driving the terminal of
	 * whoever reads the log: the C0 controls and DEL, the C1 controls
	 * (U+0080-U+009F) and a lone 8-bit C1 byte after ASCII (which a
	 * non-UTF-8 terminal obeys) become '?'. */
	for (unsigned char *p = (unsigned char *)line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			p[0] = p[1] = '?';
		else if (*p >= 0x80 && *p <= 0x9f && (p == (unsigned char *)line || p[-1] < 0x80))
			*p = '?';
	fprintf(stderr, "%s\n", line);
}

int hec_ratelimit_ok(struct hec_ratelimit *rl, int burst, int64_t window_ns, int64_t now,
		     long *suppressed)
{
	if (!rl->window_start || now - rl->window_start >= window_ns) {
		rl->window_start = now;
		rl->n = 0;
	}
	if (rl->n >= burst) {
		rl->suppressed++;
		return 0;
	}
	rl->n++;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return 1;
}

void hec_log(enum hec_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_line(level, NULL, fmt, ap);
	va_end(ap);
}

void hec_log_job(enum hec_log_level level, const char *node, long job, const char *fmt, ...)
{
	char prefix[128];
	va_list ap;

	if (level > log_level)
		return;
	snprintf(prefix, sizeof(prefix), "%s: job %ld: ", node, job);
	va_start(ap, fmt);
	log_line(level, prefix, fmt, ap);
	va_end(ap);
}

int hec_log_level_parse(const char *name, enum hec_log_level *level)
{
	static const char *const names[] = { "err", "warn", "info", "debug" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i])) {
			*level = (enum hec_log_level)i;
			return 0;
		}
	return -EINVAL;
}
