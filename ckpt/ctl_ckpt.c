/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The controller's side of coordinated checkpoints and restarts
 * (doc/design.md, "Checkpoint and restart").  Being built: the requests
 * are refused with that reason.
 */
#include "config.h"

#include <errno.h>

#include <jansson.h>

#include "hec/common.h"
#include "launcher/ctld.h"

void cli_ckpt(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	(void)ctl;
	(void)body;
	respond_error(p->conn, "job %ld: checkpoints are not built into this controller yet", j->id);
}

void cli_ckpts(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	cli_ckpt(ctl, p, j, body);
}

void cli_ckpt_delete(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	cli_ckpt(ctl, p, j, body);
}

void cli_restart(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	cli_ckpt(ctl, p, j, body);
}

void ckpt_on_captured(struct ctl *ctl, struct node *n, const json_t *body)
{
	(void)ctl;
	(void)n;
	(void)body;
}

void ckpt_on_stored(struct ctl *ctl, struct node *n, const json_t *body)
{
	ckpt_on_captured(ctl, n, body);
}

void ckpt_on_progress(struct ctl *ctl, struct node *n, const json_t *body)
{
	ckpt_on_captured(ctl, n, body);
}

int ckpt_newest(struct ctl *ctl, long job, int64_t before, int64_t *epoch)
{
	(void)ctl;
	(void)job;
	(void)before;
	(void)epoch;
	return -ENOENT;
}

void ckpt_job_ended(struct ctl *ctl, struct ctl_job *j, const char *why)
{
	(void)ctl;
	(void)j;
	(void)why;
}
