/* SPDX-License-Identifier: BSD-3-Clause */
/* Output helpers shared by the commands: JSON field access, sizes, text tables. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

const char *cli_jstr(const json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : def;
}

long cli_jint(const json_t *o, const char *key, long def)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

void cli_format_bytes(long long bytes, char *buf, size_t len)
{
	static const char *const units[] = { "kB", "MB", "GB", "TB", "PB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, len, "%lld B", bytes);
		return;
	}
	for (v /= 1024; v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0]); u++)
		v /= 1024;
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

void cli_ckpt_pauses(const json_t *parts, char *buf, size_t len)
{
	size_t used = 0, i;
	json_t *pt;

	snprintf(buf, len, "-");
	json_array_foreach(parts, i, pt) {
		long long pause = cli_jint(pt, "pause_us", 0), slot = cli_jint(pt, "slot_pause_us", pause);
		char p_ms[32], s_ms[32], in_slots[48] = "";
		int n;

		snprintf(p_ms, sizeof(p_ms), "%.1f", (double)pause / 1000.0);
		snprintf(s_ms, sizeof(s_ms), "%.1f", (double)slot / 1000.0);
		/* (as shown: a microsecond of rounding is no difference) */
		if (strcmp(p_ms, s_ms))
			snprintf(in_slots, sizeof(in_slots), " (%s in its slots)", s_ms);
		n = snprintf(buf + used, len - used, "%s%s %s ms%s%s", used ? ", " : "",
			     cli_jstr(pt, "node", "?"), p_ms, in_slots,
			     json_is_true(json_object_get(pt, "switched_out")) ? " off-slot" : "");

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

void cli_ckpt_progress(const json_t *current, long long now_ms, char *buf, size_t len)
{
	long long bytes = cli_jint(current, "bytes", 0);
	double secs = (double)(now_ms - cli_jint(current, "started", now_ms)) / 1000.0;
	char size[32], rate[32];

	if (!strcmp(cli_jstr(current, "phase", ""), "program")) {
		/* an application-assisted one, before the program took it */
		snprintf(buf, len, "checkpoint %lld: waiting for the program (its next hecckpt_need), %.1f s",
			 (long long)json_integer_value(json_object_get(current, "epoch")),
			 secs > 0 ? secs : 0.0);
		return;
	}
	cli_format_bytes(bytes, size, sizeof(size));
	if (secs > 0)
		cli_format_bytes((long long)((double)bytes / secs), rate, sizeof(rate));
	snprintf(buf, len, "checkpoint %lld: %s, %s in %.1f s%s%s%s",
		 (long long)json_integer_value(json_object_get(current, "epoch")),
		 cli_jstr(current, "phase", "?"), size, secs > 0 ? secs : 0.0,
		 secs > 0 && bytes ? " (" : "", secs > 0 && bytes ? rate : "",
		 secs > 0 && bytes ? "/s)" : "");
}

const char *const cli_storage_header[CLI_STORAGE_COLS] = {
	"NAME", "STATE", "ADDR", "TRANSPORT", "USED", "FREE", "CHUNKS", "MANIFESTS", "CORRUPT",
	"HEALTH",
};

void cli_storage_row(const json_t *s, struct cli_storage_row *r)
{
	const char *state = cli_jstr(s, "state", "?"), *health = cli_jstr(s, "health", "");

	cli_format_bytes(cli_jint(s, "used", 0), r->used, sizeof(r->used));
	cli_format_bytes(cli_jint(s, "free", 0), r->free, sizeof(r->free));
	snprintf(r->chunks, sizeof(r->chunks), "%ld", cli_jint(s, "chunks", 0));
	snprintf(r->manifests, sizeof(r->manifests), "%ld", cli_jint(s, "manifests", 0));
	snprintf(r->corrupt, sizeof(r->corrupt), "%ld", cli_jint(s, "corrupt", 0));
	if (strcmp(state, "up"))
		health = cli_jstr(s, "reason", "");
	r->cell[0] = cli_jstr(s, "name", "?");
	r->cell[1] = state;
	r->cell[2] = cli_jstr(s, "addr", "");
	r->cell[3] = cli_jstr(s, "provider", "");
	r->cell[4] = r->used;
	r->cell[5] = r->free;
	r->cell[6] = r->chunks;
	r->cell[7] = r->manifests;
	r->cell[8] = r->corrupt;
	r->cell[9] = *health ? health : "-";
}

static void when(long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "?");
}

int cli_repair_lines(const json_t *r, char *buf, size_t len)
{
	const char *state = cli_jstr(r, "state", "none"), *reason = cli_jstr(r, "reason", "");
	const char *error = cli_jstr(r, "error", NULL);
	long started = cli_jint(r, "started", 0), ended = cli_jint(r, "ended", 0);
	char t[32], why[300] = "";
	size_t used;
	const json_t *e;
	size_t i;
	int bad;

	buf[0] = 0;
	if (!r || !strcmp(state, "none"))
		return -1;
	if (*reason)
		snprintf(why, sizeof(why), " (%s)", reason);
	if (!strcmp(state, "running")) {
		when(started, t, sizeof(t));
		snprintf(buf, len, "repair: running since %s%s", t, why);
		return 0;
	}
	when(ended, t, sizeof(t));
	bad = strcmp(state, "done") != 0 || cli_jint(r, "lost", 0) > 0;
	if (!strcmp(state, "done"))
		snprintf(buf, len, "repair: done %s in %ld s%s: %ld copies made, %ld chunks lost, %ld deleted copies removed",
			 t, ended >= started ? ended - started : 0, why, cli_jint(r, "copied", 0),
			 cli_jint(r, "lost", 0), cli_jint(r, "removed", 0));
	else
		snprintf(buf, len, "repair: %s %s in %ld s%s: %s", state, t,
			 ended >= started ? ended - started : 0, why, error ? error : "no reason given");
	used = strlen(buf);
	json_array_foreach(json_object_get(r, "lost_chunks"), i, e) {
		int n = snprintf(buf + used, len - used, "\nrepair: lost %ld chunks of job %ld epoch %ld",
				 cli_jint(e, "chunks", 0), cli_jint(e, "job", 0), cli_jint(e, "epoch", 0));

		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = 0;
			break;
		}
		used += (size_t)n;
	}
	return bad;
}

/* ---- tables ---- */

int cli_table_add(struct cli_table *t, const char *const *row)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		char **c = realloc(t->cells, cap * (size_t)t->ncols * sizeof(*c));

		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	for (int i = 0; i < t->ncols; i++) {
		const char *cell = row[i] ? row[i] : "";
		size_t len = 4 * strlen(cell) + 1; /* every byte may become \xNN */
		char *safe = malloc(len);

		t->cells[t->nrows * (size_t)t->ncols + (size_t)i] =
			safe ? (char *)cli_printable(cell, safe, len) : NULL;
		if (!t->cells[t->nrows * (size_t)t->ncols + (size_t)i]) {
			while (i-- > 0)
				free(t->cells[t->nrows * (size_t)t->ncols + (size_t)i]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

/* Columns padded to their widest cell; the last one is not padded. */
void cli_table_print(const struct cli_table *t)
{
	size_t width[CLI_TABLE_COLS] = { 0 };

	for (size_t r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++) {
			size_t l = strlen(t->cells[r * (size_t)t->ncols + (size_t)c]);

			if (l > width[c])
				width[c] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		char *const *row = t->cells + r * (size_t)t->ncols;
		int last = t->ncols - 1;

		/* no trailing blanks when the last cells are empty */
		while (last > 0 && !*row[last])
			last--;
		for (int c = 0; c < last; c++)
			printf("%-*s  ", (int)width[c], row[c]);
		printf("%s\n", row[last]);
	}
}

void cli_table_free(struct cli_table *t)
{
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

