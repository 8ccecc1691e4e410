/* meshgate rotate-key: a new key pair for the device, now (rotate.h). With
 * an agent running for the interface, the agent does it (it holds the
 * config and the tunnel; two writers would undo each other): it is asked
 * with SIGUSR1 and the command waits for the config to show the new key. */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "clock.h"
#include "cmd.h"
#include "config_file.h"
#include "rotate.h"

#define AGENT_WAIT_MS 15000

/* The config's private key, and whether a rotation is under way. */
static int saved_key(const char *path, uint8_t key[CL_KEY_LEN], bool *under_way)
{
	struct cl_profile *p = calloc(1, sizeof(*p));
	struct cl_err err = {0};
	int rc = p ? cl_profile_load(path, p, &err) : -1;
	if (!rc) {
		memcpy(key, p->private_key, CL_KEY_LEN);
		*under_way = p->has_next_key;
	}
	if (p)
		sodium_memzero(p, sizeof(*p));
	free(p);
	return rc;
}

static int through_agent(const struct cl_args *a, const char *path, pid_t agent)
{
	uint8_t before[CL_KEY_LEN], now[CL_KEY_LEN];
	bool under_way;
	struct cl_err err = {0};
	if (saved_key(path, before, &under_way)) {
		cl_fail(&err, CL_EXIT_FAILURE, "cannot read %s", path);
		return cl_report(&err);
	}
	if (kill(agent, SIGUSR1)) {
		cl_fail(&err, CL_EXIT_FAILURE, "cannot ask the agent (pid %ld): %s", (long)agent,
		        strerror(errno));
		return cl_report(&err);
	}
	for (long long start = cl_mono_ms(); cl_mono_ms() - start < AGENT_WAIT_MS;) {
		if (cl_interrupted)
			return CL_EXIT_FAILURE;
		if (!saved_key(path, now, &under_way) && !under_way &&
		    memcmp(now, before, CL_KEY_LEN)) {
			sodium_memzero(before, sizeof(before));
			sodium_memzero(now, sizeof(now));
			printf("meshgate: %s: the agent rotated the device's key\n", a->ifname);
			return 0;
		}
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
	}
	sodium_memzero(before, sizeof(before));
	cl_fail(&err, CL_EXIT_SERVER,
	        "the agent (pid %ld) has not rotated the key within %d s: see %s/%s.agent.log",
	        (long)agent, AGENT_WAIT_MS / 1000, a->state_dir, a->ifname);
	return cl_report(&err);
}

static int run(const struct cl_args *a)
{
	char path[4096];
	struct cl_err err = {0};
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	if (cl_need_root("changing the tunnel's key", &err) ||
	    cl_need_enrolled(a, path, sizeof(path), &err))
		return cl_report(&err);
	pid_t agent = cl_agent_running(&tun);
	if (agent)
		return through_agent(a, path, agent);
	struct cl_rotate_opts o = {tun, path, &cl_interrupted};
	long waited_ms = -1;
	if (cl_rotate_key(&o, &waited_ms, &err))
		return cl_report(&err);
	printf("meshgate: %s: rotated the device's key\n", a->ifname);
	return 0;
}

const struct cl_command cl_cmd_rotate_key = {
    .name = "rotate-key",
    .run = run,
};
