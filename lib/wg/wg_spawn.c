/*
 * The userspace daemon as our child: `wireguard-go -f IFNAME`.
 *
 * Run in the foreground (-f) so that the pid we fork is the daemon itself and
 * can be stopped and reaped; without -f wireguard-go re-executes itself and
 * the parent exits, leaving no handle on it. The child inherits the calling
 * thread's network namespace, which is how tests put it in a namespace.
 */
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

#include "nl.h"
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
	int ret = wg_backend_uapi.get(ifname, &dev, NULL, 0);

	wg_device_free(dev);
	return ret == 0;
}

/* Looked up before fork: only async-signal-safe calls may follow it. */
static int find_program(const char *name, char *out, size_t outlen)
{
	const char *path = getenv("PATH");

	if (strchr(name, '/'))
		return snprintf(out, outlen, "%s", name) < (int)outlen && !access(out, X_OK)
		           ? 0
		           : -ENOENT;
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t dirlen = strcspn(path, ":");
		int n = snprintf(out, outlen, "%.*s/%s", (int)dirlen, path, name);

		if (dirlen && n > 0 && (size_t)n < outlen && !access(out, X_OK))
			return 0;
		path += dirlen + (path[dirlen] == ':');
	}
	return -ENOENT;
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

static _Noreturn void exec_child(const char *program, char *const argv[], char *const envp[],
                                 int devnull, unsigned flags, pid_t parent)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;

	if (flags & WG_CREATE_DIE_WITH_PARENT) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent) /* the parent died before prctl */
			_exit(127);
	}
	/* a daemon often blocks or ignores these; the child must get them */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	sigaction(SIGTERM, &dfl, NULL);
	sigaction(SIGINT, &dfl, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	sigaction(SIGHUP, &dfl, NULL);
	dup2(devnull, STDIN_FILENO);
	/* our sockets and databases are not the daemon's business */
	close_range(3, ~0u, 0);
	execve(program, argv, envp);
	_exit(127);
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int wg_userspace_spawn(const char *ifname, unsigned flags, pid_t *pid, char *err, size_t errlen)
{
	const char *name = getenv(PROGRAM_ENV) ? getenv(PROGRAM_ENV) : DEFAULT_PROGRAM;
	char program[4096], ifcopy[IF_NAMESIZE], fg[] = "-f";
	char *argv[] = {program, fg, ifcopy, NULL};
	char **envp;
	pid_t child, parent = getpid();
	int devnull, status;

	*pid = 0;
	if (socket_answers(ifname))
		return wg_err(err, errlen, -EEXIST, "a WireGuard daemon already serves %s", ifname);
	if (find_program(name, program, sizeof(program)))
		return wg_err(err, errlen, -ENOENT, "%s not found in PATH", name);
	snprintf(ifcopy, sizeof(ifcopy), "%s", ifname);
	envp = child_environment();
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (!envp || devnull < 0) {
		free(envp);
		if (devnull >= 0)
			close(devnull);
		return wg_err(err, errlen, -ENOMEM, "cannot prepare to start %s", name);
	}
	child = fork();
	if (child == 0)
		exec_child(program, argv, envp, devnull, flags, parent);
	free(envp);
	close(devnull);
	if (child < 0)
		return wg_err(err, errlen, -errno, "fork: %s", strerror(errno));

	for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
		pid_t done = waitpid(child, &status, WNOHANG);

		if (done == child)
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
	kill(child, SIGKILL);
	reap(child);
	return wg_err(err, errlen, -ETIMEDOUT, "%s %s: no answer on its socket after %d ms",
	              program, ifname, START_TIMEOUT_MS);
}

/* Our child is reaped with waitpid; any other process (SIGCHLD ignored, or
 * not ours) is polled with kill(pid, 0) until it is gone. */
static bool wait_gone(pid_t pid, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		pid_t done = waitpid(pid, NULL, WNOHANG);

		if (done == pid || (done < 0 && errno == ECHILD && kill(pid, 0) < 0))
			return true;
		sleep_ms(10);
	}
	return false;
}

int wg_userspace_stop(const char *ifname, pid_t pid, char *err, size_t errlen)
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
	if (kill(pid, SIGTERM) < 0 && errno == ESRCH)
		return wg_err(err, errlen, -ESRCH, "no process %d for %s", (int)pid, ifname);
	if (!wait_gone(pid, STOP_TIMEOUT_MS)) {
		kill(pid, SIGKILL);
		wait_gone(pid, STOP_TIMEOUT_MS);
	}
	/* SIGKILL leaves the socket file behind; remove it only if dead */
	if (!wg_uapi_socket_path(path, sizeof(path), ifname) && !socket_answers(ifname))
		unlink(path);
	return 0;
}
