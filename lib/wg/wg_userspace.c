/*
 * The userspace back end: the UAPI socket (wg_uapi.c) and the daemon behind
 * it as our child, `wireguard-go -f IFNAME`, started and stopped through the
 * one spawner (lib/spawn.h).
 *
 * Run in the foreground (-f) so that the pid we start is the daemon itself
 * and can be stopped and reaped; without -f wireguard-go re-executes itself
 * and the parent exits, leaving no handle on it. The child inherits the
 * calling thread's network namespace, which is how tests put it in a
 * namespace. Detached (WG_CREATE_DETACH) it leads its own session and
 * outlives us; the next process finds it by its socket and its link
 * (userspace_adopt) and, not being its parent, stops it by deleting the
 * link, which makes wireguard-go exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nl.h"
#include "spawn.h"
#include "wg_internal.h"
#include "wg_uapi.h"

#define DEFAULT_PROGRAM "wireguard-go"
/* Overrides the program, like wg-quick's WG_QUICK_USERSPACE_IMPLEMENTATION. */
#define PROGRAM_ENV      "MESHGATE_WG_USERSPACE"
#define START_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS  2000

extern char **environ;

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool socket_answers(const char *ifname)
{
	struct wg_device *dev = NULL;
	int ret = wg_uapi_get(ifname, &dev, NULL, 0);

	wg_device_free(dev);
	return ret == 0;
}

/* environ plus WG_PROCESS_FOREGROUND=1, which is also what keeps
 * wireguard-go from printing its "use the kernel module" banner. */
static char **child_environment(void)
{
	size_t n = 0, j = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "WG_PROCESS_FOREGROUND=", 22))
			env[j++] = environ[i];
	env[j] = "WG_PROCESS_FOREGROUND=1";
	return env;
}

static int userspace_create(const char *ifname, unsigned flags, pid_t *pid, char *err,
                            size_t errlen)
{
	const char *name = getenv(PROGRAM_ENV) ? getenv(PROGRAM_ENV) : DEFAULT_PROGRAM;
	char program[4096], ifcopy[IF_NAMESIZE], fg[] = "-f";
	char *argv[] = {program, fg, ifcopy, NULL};
	struct mg_spawn s = {.argv = argv,
	                     .die_with_parent = flags & WG_CREATE_DIE_WITH_PARENT,
	                     .new_session = flags & WG_CREATE_DETACH};
	char **envp;
	pid_t child;
	int ret, status;

	*pid = 0;
	if (socket_answers(ifname))
		return wg_err(err, errlen, -EEXIST, "a WireGuard daemon already serves %s", ifname);
	snprintf(program, sizeof(program), "%s", name);
	snprintf(ifcopy, sizeof(ifcopy), "%s", ifname);
	envp = child_environment();
	if (!envp)
		return wg_err(err, errlen, -ENOMEM, "cannot prepare to start %s", name);
	s.envp = envp;
	ret = mg_spawn_start(&s, &child, err, errlen);
	free(envp);
	if (ret)
		return ret;

	for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
		if (mg_spawn_exited(child, &status) == 1)
			return wg_err(
			    err, errlen, -ECHILD,
			    "%s %s exited (status %d) before its socket answered", program, ifname,
			    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		if (socket_answers(ifname)) {
			*pid = child;
			return 0;
		}
		sleep_ms(10);
	}
	mg_spawn_stop(child, 0, NULL);
	return wg_err(err, errlen, -ETIMEDOUT, "%s %s: no answer on its socket after %d ms",
	              program, ifname, START_TIMEOUT_MS);
}

static int userspace_adopt(const char *ifname, char *err, size_t errlen)
{
	char path[108];

	if (socket_answers(ifname)) {
		if (nl_link_index(ifname) > 0)
			return 1;
		return wg_err(err, errlen, -EEXIST,
		              "a WireGuard daemon answers on the socket of %s, but this network "
		              "namespace has no interface of that name: another namespace uses it",
		              ifname);
	}
	/* SIGKILL leaves the socket file behind, with nothing listening on it */
	if (!wg_uapi_socket_path(path, sizeof(path), ifname))
		unlink(path);
	return 0;
}

static int userspace_remove(const char *ifname, pid_t pid, char *err, size_t errlen)
{
	char path[108];
	int ret;

	if (pid <= 0) {
		/* not ours (e.g. daemonised): removing its tun makes wireguard-go exit */
		ret = nl_link_del(ifname);
		return ret ? wg_err(err, errlen, ret, "cannot delete link %s: %s", ifname,
		                    strerror(-ret))
		           : 0;
	}
	if (mg_spawn_stop(pid, STOP_TIMEOUT_MS, NULL))
		return wg_err(err, errlen, -ESRCH, "no process %d for %s", (int)pid, ifname);
	/* SIGKILL leaves the socket file behind; remove it only if dead */
	if (!wg_uapi_socket_path(path, sizeof(path), ifname) && !socket_answers(ifname))
		unlink(path);
	return 0;
}

const struct wg_backend wg_backend_uapi = {
    .name = "userspace",
    .create = userspace_create,
    .remove = userspace_remove,
    .adopt = userspace_adopt,
    .set = wg_uapi_set,
    .get = wg_uapi_get,
    .get_peers = wg_uapi_get_peers,
};
