/* One process fed on stdin: how the whole policy reaches iptables-restore
 * and ipset in one batch each. posix_spawn (no fork of a threaded daemon),
 * stdin written while stdout and stderr are drained, so that neither side
 * blocks on a full pipe. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include "fw.h"

extern char **environ;

struct sink {
	char *data;
	size_t len, cap;
};

static int sink_read(int fd, struct sink *s)
{
	if (s->cap - s->len < 4096) {
		size_t cap = s->cap ? s->cap * 2 : 8192;
		char *d = realloc(s->data, cap);
		if (!d)
			return -ENOMEM;
		s->data = d;
		s->cap = cap;
	}
	ssize_t n = read(fd, s->data + s->len, s->cap - s->len - 1);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	s->len += (size_t)n;
	s->data[s->len] = '\0';
	return n > 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Writes input, reads both outputs until the child closes them. */
static int pump(int in, int out, int errfd, const char *input, size_t len, struct sink *o,
                struct sink *e)
{
	size_t off = 0;
	int rc = 0;
	if (!len)
		close_fd(&in);
	while (out >= 0 || errfd >= 0) {
		struct pollfd p[3] = {{in, POLLOUT, 0}, {out, POLLIN, 0}, {errfd, POLLIN, 0}};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (in >= 0 && p[0].revents) {
			ssize_t n = write(in, input + off, len - off);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				close_fd(&in); /* EPIPE: it stopped reading; its status tells */
			else if (n > 0 && (off += (size_t)n) == len)
				close_fd(&in);
		}
		for (int i = 1; i < 3; i++) {
			int *fd = i == 1 ? &out : &errfd;
			if (*fd < 0 || !p[i].revents)
				continue;
			int r = sink_read(*fd, i == 1 ? o : e);
			if (r == 0 || r < 0)
				close_fd(fd);
			if (r < 0 && !rc)
				rc = r;
		}
	}
	close_fd(&in);
	return rc;
}

int fw_exec(char *const argv[], const char *input, size_t len, char **output, char *err,
            size_t errlen)
{
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	struct sink o = {0}, e = {0};
	pid_t pid;
	int rc, status = 0;

	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
		rc = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	rc = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close_fd(&pin[0]);
	close_fd(&pout[1]);
	close_fd(&perr[1]);
	if (rc) {
		snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(-rc));
		goto out;
	}
	/* a child that dies early must not kill us with SIGPIPE */
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	rc = pump(pin[1], pout[0], perr[0], input, len, &o, &e);
	pin[1] = pout[0] = perr[0] = -1;
	/* drop a SIGPIPE we may have caused before unblocking */
	struct timespec zero = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		rc = -EIO;
		size_t n = e.len;
		while (n && (e.data[n - 1] == '\n' || e.data[n - 1] == ' '))
			n--;
		if (WIFEXITED(status))
			snprintf(err, errlen, "%s exited with %d: %.*s", argv[0],
			         WEXITSTATUS(status), (int)(n > 400 ? 400 : n),
			         e.data ? e.data : "");
		else
			snprintf(err, errlen, "%s was killed by signal %d", argv[0],
			         WTERMSIG(status));
	} else if (rc) {
		snprintf(err, errlen, "talking to %s: %s", argv[0], strerror(-rc));
	}
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&pin[i]);
		close_fd(&pout[i]);
		close_fd(&perr[i]);
	}
	if (output && !rc) {
		*output = o.data ? o.data : strdup("");
		o.data = NULL;
		if (!*output)
			rc = -ENOMEM;
	}
	free(o.data);
	free(e.data);
	return rc;
}
