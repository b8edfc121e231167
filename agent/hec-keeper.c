/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-keeper STATUS_FILE PROG [ARG...]: the parent of a job's batch step,
 * so that its exit status outlives hecd (as SLURM's slurmstepd keeps a
 * step through a slurmd restart).
 *
 * hecd spawns it in the job's partition, as the job's user, with the step's
 * environment, directory and output; it forks and execs PROG, passes on the
 * signals a shell would (TERM, INT, HUP, QUIT, USR1, USR2, CONT, ALRM), and
 * when PROG ends writes one line to STATUS_FILE (made by hecd beforehand,
 * the user's own):
 *
 *     exit CODE SIGNAL TIME_MS
 *
 * (TIME_MS: CLOCK_REALTIME in ms), then ends the same way PROG did: with its
 * exit code, or by its signal (no core dump of its own).  A hecd that is
 * still its parent sees PROG's status; one that restarted in between finds
 * the line.  A keeper that cannot run PROG writes "exit 127 0 T" (126 when
 * it is not executable), as a shell would.
 *
 * No library of hec's: it sits in every batch step and must not fail for
 * anything but the kernel.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static void record(int fd, int code, int sig)
{
	struct timespec ts;
	char line[96];
	int n;

	if (fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof(line), "exit %d %d %lld\n", code, sig,
		     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	if (n > 0 && ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) == n)
		(void)fsync(fd);
	close(fd);
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT,
				    SIGALRM };
	struct sigaction sa = { .sa_handler = forward };
	int fd, status, err[2], e = 0;
	sigset_t none;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: hec-keeper STATUS_FILE PROG [ARG...]\n");
		return 2;
	}
	fd = open(argv[1], O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "hec-keeper: %s: %s (the step's status will not outlive hecd)\n",
			argv[1], strerror(errno));
	/* the exec's errno comes back through a close-on-exec pipe */
	if (pipe2(err, O_CLOEXEC)) {
		fprintf(stderr, "hec-keeper: pipe: %s\n", strerror(errno));
		record(fd, 1, 0);
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hec-keeper: fork: %s\n", strerror(errno));
		record(fd, 1, 0);
		return 1;
	}
	if (pid == 0) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			sigaction(sigs[i], &dfl, NULL);
		close(err[0]);
		execvp(argv[2], argv + 2);
		e = errno;
		(void)!write(err[1], &e, sizeof(e));
		_exit(127);
	}
	child = pid;
	close(err[1]);
	if (read(err[0], &e, sizeof(e)) == (ssize_t)sizeof(e))
		fprintf(stderr, "hec-keeper: cannot run %s: %s\n", argv[2], strerror(e));
	else
		e = 0;
	close(err[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			record(fd, 1, 0);
			return 1;
		}
	child = 0;
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		record(fd, 0, sig);
		/* end as the step did, without a core of our own */
		prctl(PR_SET_DUMPABLE, 0);
		sigaction(sig, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		raise(sig);
		return 128 + sig;
	}
	status = WEXITSTATUS(status);
	if (e)
		status = e == ENOENT ? 127 : e == EACCES || e == ENOEXEC ? 126 : status;
	record(fd, status, 0);
	return status;
}
