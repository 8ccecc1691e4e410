#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = calloc(1, (size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

void daemon_setup(struct daemon *d, const char *extra)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/mgtest.XXXXXX");
	if (!mkdtemp(d->dir))
		abort();
	snprintf(d->config, sizeof(d->config), "%s/meshgated.conf", d->dir);
	snprintf(d->socket, sizeof(d->socket), "%s/run/bus.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/meshgated.log", d->dir);
	FILE *f = fopen(d->config, "w");
	fprintf(f,
	        "state_dir = \"%s/state\";\nsocket = \"%s\";\nplugin_dir = \"%s\";\n"
	        "log_level = \"debug\";\n%s\n",
	        d->dir, d->socket, TEST_PLUGIN_DIR, extra);
	fclose(f);
	d->zctx = zmq_ctx_new();
}

static pid_t spawn(struct daemon *d, int check)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		dup2(fd, 1);
		execl(MESHGATED, "meshgated", "--config", d->config,
		      check ? "--check-config" : NULL, NULL);
		_exit(127);
	}
	return pid;
}

int daemon_check(struct daemon *d, char *out, size_t outlen)
{
	int status;
	unlink(d->log);
	pid_t pid = spawn(d, 1);
	waitpid(pid, &status, 0);
	char *text = slurp(d->log);
	snprintf(out, outlen, "%s", text);
	free(text);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int daemon_call(struct daemon *d, const char *service, const char *json, int timeout_ms,
                json_t **reply)
{
	json_t *request = json ? json_loads(json, 0, NULL) : NULL;
	int rc = mg_bus_client_request(d->bus, service, request, timeout_ms, reply);
	json_decref(request);
	return rc;
}

static int starting(json_t *status)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(status, "plugins"), i, p)
	{
		const char *state = json_string_value(json_object_get(p, "state"));
		if (state && (!strcmp(state, "loaded") || !strcmp(state, "initialised") ||
		              !strcmp(state, "starting")))
			return 1;
	}
	return 0;
}

/* Waits until the bus answers, and with `started` until no plugin is
 * still loading or starting. */
static int start_and_wait(struct daemon *d, int started)
{
	char endpoint[400], err[256];
	d->pid = spawn(d, 0);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", d->socket);
	for (int i = 0; i < 250; i++) {
		if (!d->bus)
			d->bus = mg_bus_client_new(d->zctx, endpoint, err, sizeof(err));
		json_t *reply = NULL;
		/* the bus answers before the plugins are up: wait until none is
		 * still loading or starting */
		if (d->bus && !daemon_call(d, "core.status", NULL, 100, &reply) &&
		    (!started || !starting(reply))) {
			json_decref(reply);
			return 0;
		}
		json_decref(reply);
		usleep(20000);
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			return -1;
		}
	}
	return -1;
}

int daemon_start(struct daemon *d)
{
	return start_and_wait(d, 1);
}

int daemon_start_serving(struct daemon *d)
{
	return start_and_wait(d, 0);
}

int daemon_wait_exit(struct daemon *d, int timeout_ms)
{
	int status;
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		usleep(10000);
	}
	return -1;
}

void daemon_kill(struct daemon *d, int sig)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, sig);
	if (daemon_wait_exit(d, 10000) < 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
	}
	d->pid = 0;
	/* a new daemon is a new peer: start over with a fresh client */
	mg_bus_client_free(d->bus);
	d->bus = NULL;
}

void daemon_teardown(struct daemon *d)
{
	char cmd[512];
	daemon_kill(d, SIGKILL);
	mg_bus_client_free(d->bus);
	d->bus = NULL;
	zmq_ctx_term(d->zctx);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", d->dir);
}

int daemon_fixture_setup(void **state)
{
	*state = calloc(1, sizeof(struct daemon));
	return *state ? 0 : -1;
}

int daemon_fixture_teardown(void **state)
{
	struct daemon *d = *state;
	if (d->dir[0])
		daemon_teardown(d);
	free(d);
	return 0;
}
