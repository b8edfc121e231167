/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec: the user's command line.  Global options, then a command; each
 * command parses the rest of the words itself (cli/jobs.c, cli/cluster.c).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	int (*fn)(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "cluster", cmd_cluster, "up --nodes N [--storage M] | down | status: an embedded cluster on this machine" },
	{ "nodes", cmd_nodes, "list nodes (sinfo)" },
	{ "submit", cmd_submit, "queue a batch script or -- PROGRAM ARGS (sbatch)" },
	{ "queue", cmd_queue, "list jobs (squeue)" },
	{ "show", cmd_show, "one job's record (scontrol show job)" },
	{ "cancel", cmd_cancel, "cancel jobs (scancel)" },
	{ "ckpt", cmd_ckpt, "checkpoint a running vm job (--wait), or --delete one" },
	{ "ckpts", cmd_ckpts, "a vm job's committed checkpoints" },
	{ "restart", cmd_restart, "restart a vm job from a checkpoint" },
	{ "wait", cmd_wait, "wait for a job to end; exit status tells how" },
	{ "logs", cmd_logs, "print a job's output, -f to follow" },
	{ "gang", cmd_gang, "gang scheduler: matrix, stats, set" },
	{ "storage", cmd_storage, "checkpoint storage servers: state, space, health, repair" },
};

enum { G_DIR = 'D', G_HELP = 'h', G_VERSION = CLI_LONG_ONLY, G_CONTROLLER = CLI_LONG_ONLY + 1 };

static const struct cli_opt global_options[] = {
	{ "dir", G_DIR, 1 }, { "controller", G_CONTROLLER, 1 }, { "help", G_HELP, 0 },
	{ "version", G_VERSION, 0 }, { NULL, 0, 0 },
};

static void help(void)
{
	printf("usage: hec [--dir DIR | --controller HOST:PORT] COMMAND [ARGS...]\n"
	       "Batch jobs for MPICH programs on a hec cluster.\n\n"
	       "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-8s %s\n", commands[i].name, commands[i].summary);
	printf("\nOptions:\n"
	       "  -D, --dir=DIR  cluster directory; default $HEC_DIR, else the one in\n"
	       "                 ~/.hec/current (the last cluster up), else ~/.hec/cluster\n"
	       "      --controller=HOST:PORT\n"
	       "                 talk to the controller over TCP (its cli_listen), as\n"
	       "                 the user a MUNGE credential names; default\n"
	       "                 $HEC_CONTROLLER, else the cluster directory's socket.\n"
	       "                 $HEC_MUNGE_SOCKET: munged's socket (default: libmunge's)\n"
	       "  -h, --help     this text; hec COMMAND --help for a command\n"
	       "      --version  print the version\n\n"
	       "Exit status: 0 success, 1 failure, 2 usage error (hec wait: see its --help).\n"
	       "See hec(1).\n");
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx;
	struct cli_args a;
	const char *dir = NULL;
	int key;

	/* a controller that dies mid-request is an error message, not a signal */
	signal(SIGPIPE, SIG_IGN);
	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, global_options)) != 0) {
		if (key < 0)
			return cli_usage(NULL, "%s", a.err);
		if (key == CLI_OPERAND) {
			a.i--;
			break;
		}
		if (key == G_HELP) {
			help();
			return CLI_EXIT_OK;
		}
		if (key == G_VERSION) {
			printf("hec %s\n", PACKAGE_VERSION);
			return CLI_EXIT_OK;
		}
		if (key == G_CONTROLLER)
			cli_opt_controller = a.arg;
		else
			dir = a.arg;
	}
	if (a.i >= a.argc)
		return cli_usage(NULL, "which command? (cluster, nodes, submit, queue, show, cancel, ckpt, ckpts, restart, wait, logs, gang, storage)");
	if (!strcmp(a.argv[a.i], "help")) {
		help();
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(a.argv[a.i], commands[i].name))
			return commands[i].fn(&ctx, dir, a.argc - a.i, a.argv + a.i);
	return cli_usage(NULL, "unknown command '%s'", a.argv[a.i]);
}
