/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's image (vm.h): hec-mkimage builds, or finds in its cache, the
 * kernel and initramfs (hec-guest, the job's files); it runs as our child
 * and prints kernel= and initrd= when done.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"

int vm_image_id(const struct vm *v, char *out, size_t len)
{
	const char *end = strrchr(v->initrd, '/'), *start = end;

	while (start && start > v->initrd && start[-1] != '/')
		start--;
	if (!end || start == end)
		return -ENOENT;
	return hec_fmt(out, len, "%.*s", (int)(end - start), start);
}

void mk_done(struct vm *v)
{
	char *line, *save = NULL, *last = NULL, why[1024], id[PATH_MAX];
	int code = WIFEXITED(v->mk_status) ? WEXITSTATUS(v->mk_status) : 0;
	int sig = WIFSIGNALED(v->mk_status) ? WTERMSIG(v->mk_status) : 0;

	v->mk_out[v->mk_len] = 0;
	for (line = strtok_r(v->mk_out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "kernel=", 7))
			hec_fmt(v->kernel, sizeof(v->kernel), "%s", line + 7);
		else if (!strncmp(line, "initrd=", 7))
			hec_fmt(v->initrd, sizeof(v->initrd), "%s", line + 7);
		else
			last = line;
	}
	if (code || sig || !v->kernel[0] || !v->initrd[0]) {
		vm_fail(v, "guest image: %s", last ? last :
			sig ? "hec-mkimage was killed" : "hec-mkimage printed no kernel= and initrd=");
		return;
	}
	/* A restart needs the very guest the state was saved from: another
	 * kernel, hec-guest or file of the job would run with the old one's
	 * memory (and QEMU may well load it). */
	if (v->from_stream && v->want_image[0] &&
	    (vm_image_id(v, id, sizeof(id)) || strcmp(id, v->want_image))) {
		vm_fail(v, "the guest image differs from the checkpoint's: %s here, %s in the checkpoint (its kernel, hec-guest, hec-mkimage or the job's files changed since)",
			vm_image_id(v, id, sizeof(id)) ? v->initrd : id, v->want_image);
		return;
	}
	v->state = VM_BOOTING;
	if (start_qemu(v, why, sizeof(why)))
		vm_fail(v, "%s", why);
	else if (v->from_stream)
		incoming_begin(v);
}

static void mk_read(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;
	ssize_t n;

	(void)what;
	n = read((int)fd, v->mk_out + v->mk_len, sizeof(v->mk_out) - 1 - v->mk_len);
	if (n > 0) {
		v->mk_len += (size_t)n;
		if (v->mk_len < sizeof(v->mk_out) - 1)
			return;
	} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	v->mk_eof = 1;
	event_del(v->mk_ev);
	if (v->mk_reaped)
		mk_done(v);
}

int user_may_read(struct vm *v, const json_t *files, char *why, size_t len)
{
	size_t i;
	json_t *f;
	pid_t pid;
	int st, pfd[2];
	char bad[PATH_MAX] = "";

	if (geteuid() != 0 || json_array_size(files) == 0)
		return 0;
	if (pipe2(pfd, O_CLOEXEC)) {
		hec_fmt(why, len, "pipe: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		if (hec_become_user(v->uid, v->gid, &v->groups))
			_exit(2);
		json_array_foreach(files, i, f)
			if (access(json_string_value(f), R_OK)) {
				const char *s = json_string_value(f);
				int e = errno;

				if (write(pfd[1], s, strlen(s)) < 0)
					_exit(3);
				_exit(e == ENOENT ? 4 : 1);
			}
		_exit(0);
	}
	close(pfd[1]);
	if (pid < 0) {
		hec_fmt(why, len, "fork: %s", strerror(errno));
		close(pfd[0]);
		return -errno;
	}
	st = (int)read(pfd[0], bad, sizeof(bad) - 1);
	bad[st > 0 ? st : 0] = 0;
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	hec_fmt(why, len, "%s: %s for uid %u, so it cannot go into the guest image", bad[0] ? bad : "a vm file",
	    WIFEXITED(st) && WEXITSTATUS(st) == 4 ? "no such file" : "not readable", (unsigned)v->uid);
	return -EACCES;
}

int start_mkimage(struct vm *v, const json_t *files, char *why, size_t len)
{
	const char **argv;
	size_t n = json_array_size(files), i;
	int pfd[2], argc = 0, nullfd;
	json_t *f;
	pid_t pid;
	sigset_t all, old;
	char user[48];

	argv = calloc(16 + 2 * n, sizeof(*argv));
	if (!argv) {
		hec_fmt(why, len, "out of memory");
		return -ENOMEM;
	}
	argv[argc++] = v->host->mkimage;
	argv[argc++] = "--cache";
	argv[argc++] = v->host->image_cache;
	/* The image holds the job's files: built by the job's user, for it alone. */
	if (geteuid() == 0) {
		hec_fmt(user, sizeof(user), "%u:%u", (unsigned)v->uid, (unsigned)v->gid);
		argv[argc++] = "--user";
		argv[argc++] = user;
	}
	argv[argc++] = "--guest";
	argv[argc++] = v->host->guest_bin;
	if (v->host->vm_kernel[0]) {
		argv[argc++] = "--kernel";
		argv[argc++] = v->host->vm_kernel;
	}
	argv[argc++] = "--mpifix";
	argv[argc++] = v->host->mpifix;
	json_array_foreach(files, i, f) {
		argv[argc++] = "--add";
		argv[argc++] = json_string_value(f);
	}
	argv[argc] = NULL;
	if (pipe2(pfd, O_CLOEXEC)) {
		free(argv);
		hec_fmt(why, len, "pipe: %s", strerror(errno));
		return -errno;
	}
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		hec_child_signals_default();
		dup2(nullfd, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(argv[0], (char *const *)argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(pfd[1]);
	if (nullfd >= 0)
		close(nullfd);
	free(argv);
	if (pid < 0) {
		close(pfd[0]);
		hec_fmt(why, len, "fork: %s", strerror(errno));
		return -errno;
	}
	v->mk_pid = pid;
	v->mk_fd = pfd[0];
	evutil_make_socket_nonblocking(v->mk_fd);
	v->mk_ev = event_new(v->host->base, v->mk_fd, EV_READ | EV_PERSIST, mk_read, v);
	if (!v->mk_ev || event_add(v->mk_ev, NULL)) {
		hec_fmt(why, len, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

