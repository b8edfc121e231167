/* SPDX-License-Identifier: BSD-3-Clause */
/* Small helpers of hecd: environment arrays, key comparison, wait statuses. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agent/agent.h"

int envv_add(struct envv *e, const char *kv)
{
	char *copy;

	if (e->n + 2 > e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 64;
		char **nv = realloc(e->v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		e->v = nv;
		e->cap = ncap;
	}
	copy = strdup(kv);
	if (!copy)
		return -ENOMEM;
	e->v[e->n++] = copy;
	e->v[e->n] = NULL;
	return 0;
}

/* Replace every "KEY=..." (the submitter's env may carry stale HEC_* ones). */
int envv_set(struct envv *e, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = strlen(value), i, j;
	char *kv = malloc(klen + vlen + 2);
	int rc;

	if (!kv)
		return -ENOMEM;
	memcpy(kv, key, klen);
	kv[klen] = '=';
	memcpy(kv + klen + 1, value, vlen + 1);
	for (i = j = 0; i < e->n; i++) {
		if (!strncmp(e->v[i], key, klen) && e->v[i][klen] == '=')
			free(e->v[i]);
		else
			e->v[j++] = e->v[i];
	}
	e->n = j;
	if (e->v)
		e->v[e->n] = NULL;
	rc = envv_add(e, kv);
	free(kv);
	return rc;
}

int envv_path_first(struct envv *e, const char *dir)
{
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	char *v;
	int rc;

	for (size_t i = 0; i < e->n; i++)
		if (!strncmp(e->v[i], "PATH=", 5))
			path = e->v[i] + 5;
	v = malloc(strlen(dir) + strlen(path) + 2);
	if (!v)
		return -ENOMEM;
	strcpy(v, dir);
	if (*path) {
		strcat(v, ":");
		strcat(v, path);
	}
	rc = envv_set(e, "PATH", v);
	free(v);
	return rc;
}

void envv_free(struct envv *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

int agent_key_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char diff = la != lb;

	/* Time depends on the presented key's length only, not on where it differs. */
	for (i = 0; i < lb; i++)
		diff |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
	return diff == 0;
}

void agent_wait_status(int status, int *exit, int *sig)
{
	*exit = 0;
	*sig = 0;
	if (WIFEXITED(status))
		*exit = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		*sig = WTERMSIG(status);
}
