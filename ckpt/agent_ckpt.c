/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The agent's side of a coordinated checkpoint (doc/design.md, "Checkpoint
 * and restart"; doc/protocol.md, "checkpoints").  Being built: until then
 * every PREPARE is answered with a failed CKPT_CAPTURED, so the controller
 * aborts the checkpoint and the job runs on.
 */
#include "config.h"

#include <jansson.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "agent/agent.h"

void agent_ckpt_on_prepare(struct agent *ag, const json_t *body)
{
	agent_ctl_send(ag, HEC_MSG_CKPT_CAPTURED,
		       json_pack("{s:O,s:O,s:s}", "job", json_object_get(body, "job"), "epoch",
				 json_object_get(body, "epoch"), "error",
				 "this agent cannot checkpoint yet"));
}

void agent_ckpt_on_reopen(struct agent *ag, const json_t *body)
{
	(void)ag;
	(void)body;
}

void agent_ckpt_on_abort(struct agent *ag, const json_t *body)
{
	(void)ag;
	(void)body;
}

void agent_ckpt_job_gone(struct agent *ag, long job)
{
	(void)ag;
	(void)job;
}
