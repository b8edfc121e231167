/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-storeprobe: speaks hecstored's protocol (doc/storage.md) one message
 * at a time, for tests that need exact control (bad requests, wrong hashes)
 * rather than the real client (hec-store).
 *
 *   hec-storeprobe HOST:PORT [--provider P] [--timeout MS] < commands
 *
 * One command a line; each prints one line, the JSON of what the server
 * answered (STORE_WELCOME, STORE_REP or ERROR; {"closed":"why"} when the
 * server closed, {"timeout":true} when nothing came).  Commands:
 *   hello KEY CLIENT
 *   put JOB EPOCH PART IDX SLOT TEXT [HASH]   RMA-write TEXT into SLOT, then put
 *                                             (HASH: the one to claim, default right)
 *   get JOB EPOCH PART IDX SLOT               get; RMA-read the slot: adds "data"
 *                                             and "verified" (the hash matched)
 *   commit JOB EPOCH SLOT TEXT                TEXT: the manifest (no spaces)
 *   manifest JOB EPOCH|0 SLOT | list JOB|0 SLOT   (adds "data")
 *   delete JOB EPOCH | abort JOB EPOCH | status
 *   peek SLOT                                 RMA-read the whole slot, no request:
 *                                             {"slot", "nonzero" bytes, "data" up to a NUL}
 *   req JSON                                  any STORE_REQ body, as is ("req" too)
 *   frame TYPE JSON                           any frame type with that body
 * Exit status: 0 after the last command, 1 an error of the probe, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <xxhash.h>

#include "hec/msg.h"
#include "rdma/hecfab.h"

static struct hec_fab *fab;
static struct hec_fab_ep *ep;
static struct hec_fab_mr *mr;
static unsigned char *mem;
static uint64_t rbase, rkey, slot_size;
static int timeout_ms = 10000;
static long next_req = 1;

/* Wait for a message (returned, caller decrefs; NULL after printing a
 * closed/timeout line) or, with @ctx, for that operation's completion. */
static json_t *wait_for(void *ctx, int *done_err)
{
	int waited = 0;

	while (waited < timeout_ms) {
		struct hec_fab_ev ev[8];
		int n = hec_fab_poll(fab, ev, 8);

		for (int i = 0; i < n; i++) {
			if (ev[i].type == HEC_FAB_EV_DONE && ctx && ev[i].ctx == ctx) {
				*done_err = ev[i].err;
				return NULL;
			}
			if (ev[i].type == HEC_FAB_EV_CLOSED) {
				json_t *o = json_pack("{s:s}", "closed", ev[i].err ? ev[i].why : "peer");

				if (ctx)
					*done_err = -ECONNRESET;
				hec_fab_ep_free(ep);
				ep = NULL;
				return o;
			}
			if (ev[i].type == HEC_FAB_EV_RECV && !ctx) {
				struct hec_msg m;
				size_t used;
				char err[256];
				json_t *o;

				if (hec_msg_decode(ev[i].data, ev[i].len, &m, &used, err, sizeof(err)))
					return json_pack("{s:s}", "undecodable", err);
				o = json_deep_copy(m.body);
				json_object_set_new(o, "type",
						    json_string(hec_msg_type_name(m.type)));
				hec_msg_clear(&m);
				return o;
			}
		}
		if (n == 0) {
			hec_fab_wait(fab, 50);
			waited += 50;
		}
	}
	if (ctx)
		*done_err = -ETIMEDOUT;
	return json_pack("{s:b}", "timeout", 1);
}

static int send_body(unsigned type, json_t *body)
{
	uint8_t *buf;
	size_t len;
	int rc = hec_msg_encode(type, body, &buf, &len);

	if (rc)
		return rc;
	while ((rc = hec_fab_send(ep, buf, len, NULL)) == -EAGAIN)
		hec_fab_wait(fab, 10);
	free(buf);
	return rc;
}

static void print(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);

	printf("%s\n", s ? s : "{}");
	fflush(stdout);
	free(s);
	json_decref(o);
}

static void hex(uint64_t h, char out[17])
{
	snprintf(out, 17, "%016" PRIx64, h);
}

static int rma(int write, int slot, size_t len)
{
	static char ctx;
	int err = 0, rc;

	rc = write ? hec_fab_write(ep, mr, 0, len, rbase + (uint64_t)slot * slot_size, rkey, &ctx)
		   : hec_fab_read(ep, mr, 0, len, rbase + (uint64_t)slot * slot_size, rkey, &ctx);
	if (rc)
		return rc;
	json_decref(wait_for(&ctx, &err));
	return err;
}

/* Send a STORE_REQ and print the answer; @data: read the slot back after. */
static void request(json_t *body, int data)
{
	json_t *rep;
	int rc;

	if (!json_object_get(body, "req"))
		json_object_set_new(body, "req", json_integer(next_req++));
	rc = send_body(HEC_MSG_STORE_REQ, body);
	json_decref(body);
	if (rc) {
		print(json_pack("{s:s}", "send", strerror(-rc)));
		return;
	}
	rep = wait_for(NULL, NULL);
	if (data && rep && json_object_get(rep, "len") && !json_object_get(rep, "error")) {
		size_t len = (size_t)json_integer_value(json_object_get(rep, "len"));
		char h[17];

		rc = rma(0, data - 1, len);
		if (rc) {
			json_object_set_new(rep, "rma", json_string(strerror(-rc)));
		} else {
			hex(XXH3_64bits(mem, len), h);
			json_object_set_new(rep, "data", json_stringn((char *)mem, len));
			json_object_set_new(rep, "verified", json_boolean(
				!strcmp(h, json_string_value(json_object_get(rep, "hash")))));
		}
	}
	print(rep);
}

static void on_welcome(json_t *w)
{
	char why[HEC_FAB_WHY];

	rbase = strtoull(json_string_value(json_object_get(w, "base")), NULL, 16);
	rkey = strtoull(json_string_value(json_object_get(w, "rkey")), NULL, 16);
	slot_size = (uint64_t)json_integer_value(json_object_get(w, "slot_size"));
	mem = calloc(1, slot_size);
	if (!mem || hec_fab_mr_reg(fab, mem, slot_size, &mr, why, sizeof(why))) {
		fprintf(stderr, "hec-storeprobe: cannot register %" PRIu64 " bytes\n", slot_size);
		exit(1);
	}
}

static long num(const char *s)
{
	return s ? strtol(s, NULL, 10) : 0;
}

static void command(char *line)
{
	char *argv[12] = { 0 }, *save = NULL;
	int argc = 0;

	for (char *t = strtok_r(line, " \t\n", &save); t && argc < 12;
	     t = strtok_r(NULL, " \t\n", &save))
		argv[argc++] = t;
	if (argc == 0)
		return;
	if (!ep) {
		print(json_pack("{s:s}", "closed", "earlier"));
		return;
	}
	if (!strcmp(argv[0], "hello") && argc == 3) {
		json_t *b = json_pack("{s:s, s:s}", "key", strcmp(argv[1], "-") ? argv[1] : "",
				      "client", argv[2]), *w;

		send_body(HEC_MSG_STORE_HELLO, b);
		json_decref(b);
		w = wait_for(NULL, NULL);
		if (w && json_object_get(w, "rkey") && !mr)
			on_welcome(w);
		print(w);
	} else if (!strcmp(argv[0], "put") && argc >= 7) {
		size_t len = strlen(argv[6]);
		char h[17];
		int rc;

		if (len > slot_size) {
			print(json_pack("{s:s}", "probe", "text larger than a slot"));
			return;
		}
		memcpy(mem, argv[6], len);
		hex(XXH3_64bits(mem, len), h);
		/* the request right behind the write: the fabric orders them */
		rc = hec_fab_write(ep, mr, 0, len, rbase + (uint64_t)num(argv[5]) * slot_size, rkey,
				   NULL);
		if (rc) {
			print(json_pack("{s:s}", "rma", strerror(-rc)));
			return;
		}
		request(json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:s, s:I}", "op", "put",
				  "job", (json_int_t)num(argv[1]), "epoch", (json_int_t)num(argv[2]),
				  "part", argv[3], "idx", (json_int_t)num(argv[4]),
				  "len", (json_int_t)len, "hash", argc > 7 ? argv[7] : h,
				  "slot", (json_int_t)num(argv[5])), 0);
	} else if (!strcmp(argv[0], "get") && argc == 6) {
		request(json_pack("{s:s, s:I, s:I, s:s, s:I, s:I}", "op", "get",
				  "job", (json_int_t)num(argv[1]), "epoch", (json_int_t)num(argv[2]),
				  "part", argv[3], "idx", (json_int_t)num(argv[4]),
				  "slot", (json_int_t)num(argv[5])), (int)num(argv[5]) + 1);
	} else if (!strcmp(argv[0], "commit") && argc == 5) {
		size_t len = strlen(argv[4]);
		char h[17];
		int rc;

		memcpy(mem, argv[4], len);
		hex(XXH3_64bits(mem, len), h);
		rc = rma(1, (int)num(argv[3]), len);
		if (rc) {
			print(json_pack("{s:s}", "rma", strerror(-rc)));
			return;
		}
		request(json_pack("{s:s, s:I, s:I, s:I, s:s, s:I}", "op", "commit",
				  "job", (json_int_t)num(argv[1]), "epoch", (json_int_t)num(argv[2]),
				  "len", (json_int_t)len, "hash", h, "slot", (json_int_t)num(argv[3])), 0);
	} else if (!strcmp(argv[0], "manifest") && argc == 4) {
		json_t *b = json_pack("{s:s, s:I, s:I}", "op", "manifest",
				      "job", (json_int_t)num(argv[1]), "slot", (json_int_t)num(argv[3]));

		if (num(argv[2]))
			json_object_set_new(b, "epoch", json_integer(num(argv[2])));
		request(b, (int)num(argv[3]) + 1);
	} else if (!strcmp(argv[0], "list") && argc == 3) {
		json_t *b = json_pack("{s:s, s:I}", "op", "list", "slot", (json_int_t)num(argv[2]));

		if (num(argv[1]))
			json_object_set_new(b, "job", json_integer(num(argv[1])));
		request(b, (int)num(argv[2]) + 1);
	} else if ((!strcmp(argv[0], "delete") || !strcmp(argv[0], "abort")) && argc == 3) {
		request(json_pack("{s:s, s:I, s:I}", "op", argv[0], "job", (json_int_t)num(argv[1]),
				  "epoch", (json_int_t)num(argv[2])), 0);
	} else if (!strcmp(argv[0], "peek") && argc == 2) {
		size_t nonzero = 0;
		int rc;

		memset(mem, 0, slot_size);
		rc = rma(0, (int)num(argv[1]), slot_size);
		if (rc) {
			print(json_pack("{s:s}", "rma", strerror(-rc)));
			return;
		}
		for (uint64_t i = 0; i < slot_size; i++)
			nonzero += mem[i] != 0;
		print(json_pack("{s:I, s:I, s:s%}", "slot", (json_int_t)num(argv[1]), "nonzero",
				(json_int_t)nonzero, "data", (const char *)mem,
				strnlen((const char *)mem, 64)));
	} else if (!strcmp(argv[0], "status")) {
		request(json_pack("{s:s}", "op", "status"), 0);
	} else if ((!strcmp(argv[0], "req") && argc == 2) ||
		   (!strcmp(argv[0], "frame") && argc == 3)) {
		/* raw: no schema check on our side, the server's is under test */
		json_t *b = json_loads(argv[argc - 1], 0, NULL);
		unsigned type = argc == 3 ? (unsigned)num(argv[1]) : HEC_MSG_STORE_REQ;
		char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
		uint8_t frame[4096];
		size_t len = text ? strlen(text) : 0;
		int rc = -EINVAL;

		if (text && len + HEC_MSG_HDR_LEN <= sizeof(frame) &&
		    hec_msg_header(frame, type, len) == 0) {
			memcpy(frame + HEC_MSG_HDR_LEN, text, len);
			rc = hec_fab_send(ep, frame, len + HEC_MSG_HDR_LEN, NULL);
		}
		free(text);
		json_decref(b);
		if (rc)
			print(json_pack("{s:s}", "send", strerror(-rc)));
		else
			print(wait_for(NULL, NULL));
	} else {
		fprintf(stderr, "hec-storeprobe: bad command '%s'\n", argv[0]);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct hec_fab_opts o = { 0 };
	char why[HEC_FAB_WHY], line[4096];

	if (argc < 2) {
		fprintf(stderr, "usage: hec-storeprobe HOST:PORT [--provider P] [--timeout MS]\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--provider"))
			o.provider = argv[i + 1];
		else if (!strcmp(argv[i], "--timeout"))
			timeout_ms = (int)num(argv[i + 1]);
	}
	if (hec_fab_connect(&o, argv[1], timeout_ms, &fab, &ep, why, sizeof(why))) {
		fprintf(stderr, "hec-storeprobe: %s: %s\n", argv[1], why);
		return 1;
	}
	while (fgets(line, sizeof(line), stdin))
		command(line);
	if (mr)
		hec_fab_mr_free(mr);
	if (ep)
		hec_fab_ep_free(ep);
	hec_fab_close(fab);
	free(mem);
	return 0;
}
