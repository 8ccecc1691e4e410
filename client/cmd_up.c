/* meshgate up: the first connection of a device (enroll.h), or again from
 * its saved config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent.h"
#include "cmd.h"
#include "enroll.h"
#include "follow.h"
#include "killswitch.h"
#include "login.h"
#include "nl.h"
#include "resolver.h"
#include "tunnel.h"

#define API_TIMEOUT_S     30
#define UP_SYNC_TIMEOUT_S 5 /* the sync right after a reconnect: best effort */
#define CODE_MAX          128

/* This machine's network, as the enrolment and the reconnect reach it. */
static const struct cl_net net = {
    .check = cl_tunnel_check,
    .up = cl_tunnel_up,
    .wait_handshake = cl_tunnel_wait_handshake,
    .down = cl_tunnel_down,
    .resolver_apply = cl_resolver_apply,
};

static bool code_valid(const char *code)
{
	size_t n = strlen(code);
	if (n == 0 || n > CODE_MAX)
		return false;
	for (const char *s = code; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return false;
	return true;
}

/* The API takes up to 253 bytes of UTF-8 without control characters. */
static bool name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 253)
		return false;
	for (const unsigned char *s = (const unsigned char *)name; *s; s++)
		if (*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int check(const struct cl_args *a)
{
	if (a->ca && a->pin)
		return cl_usage_error("%s", "give --ca or --pin, not both");
	if (a->no_agent && a->export_path)
		return cl_usage_error("%s", "--no-agent is for a tunnel; --export makes none");
	if (a->kill_switch && (a->export_path || a->no_agent))
		return cl_usage_error("%s",
		                      "--kill-switch is for a tunnel with its agent (not with "
		                      "--export or --no-agent)");
	if (a->mtu && a->export_path)
		return cl_usage_error("%s", "--mtu is for a tunnel; --export makes none");
	if (a->qr && !a->export_path)
		return cl_usage_error("%s", "--qr needs --export FILE");
	if (a->name && !name_valid(a->name))
		return cl_usage_error("%s",
		                      "--name must be 1-253 characters without control characters");
	if (a->code && !code_valid(a->code))
		return cl_usage_error("%s", "the code must be 1-128 printable characters");
	if (a->code && a->login)
		return cl_usage_error("%s", "give a CODE or --login, not both");
	if (a->code && !a->server)
		return cl_usage_error("%s", "up CODE needs --server https://HOST:PORT");
	if (a->login && !a->server)
		return cl_usage_error("%s", "up --login needs --server https://HOST:PORT");
	if (!a->code && !a->login && (a->server || a->ca || a->pin || a->export_path || a->name))
		return cl_usage_error("%s", "missing CODE (or --login)");
	return 0;
}

/* After `up`: a reconnect from a saved config follows the networks at
 * once (they may have changed while it was down); then the hint. */
static void after_up(const struct cl_args *a, const struct cl_tunnel_opts *tun,
                     const char *config_path, const struct cl_profile *p, bool reconnected)
{
	if (!*p->vpn_api)
		return; /* a gateway without the device config: nothing to follow */
	if (reconnected) {
		struct cl_follow_opts o = {*tun, config_path, UP_SYNC_TIMEOUT_S, &cl_interrupted};
		struct cl_follow_result res;
		struct cl_err err = {0};
		if (cl_follow_sync(&o, &res, &err))
			fprintf(stderr, "meshgate: warning: the networks were not refreshed: %s\n",
			        err.msg);
		else
			cl_follow_print(stdout, a->ifname, &res, false);
	}
	if (a->no_agent || !cl_agent_wanted(p))
		printf("meshgate: to follow the networks the gateway gives this device as they "
		       "change, run: meshgate watch --interface %s\n",
		       a->ifname);
}

/* The kill switch (killswitch.h) of a device that asked for one, over the
 * saved config as the sync left it (the nodes may have changed). Without
 * it the tunnel is taken down again: the user asked not to be left
 * unprotected. */
static int arm_kill_switch(const struct cl_tunnel_opts *tun, const char *config_path,
                           struct cl_err *err)
{
	struct cl_profile *p = calloc(1, sizeof(*p));
	int rc = !p ? cl_fail(err, CL_EXIT_FAILURE, "out of memory")
	            : cl_profile_load(config_path, p, err);
	if (!rc && p->kill_switch && (rc = cl_killswitch_apply(tun, p, err)))
		cl_tunnel_down(tun, true, NULL);
	else if (!rc && p->kill_switch && !p->nodes.has_probe && !cl_tunnel_is_full(p))
		fprintf(stderr,
		        "meshgate: warning: %s: the gateway tells no probe address: the kill "
		        "switch's gate opens only while other packets come through the "
		        "tunnel\n",
		        tun->ifname);
	if (!rc && p->kill_switch)
		printf("meshgate: %s: kill switch armed (nothing leaves outside the tunnel while "
		       "it is down)\n",
		       tun->ifname);
	if (p)
		sodium_memzero(p, sizeof(*p));
	free(p);
	return rc;
}

/* The agent (agent.h), unless --no-agent: a daemon that outlives this
 * command, following the gateway's nodes (when it has several) and the
 * device's networks. Its own config: the one `up` saved. */
static int start_agent(const struct cl_args *a, const struct cl_tunnel_opts *tun,
                       const char *config_path, struct cl_err *err)
{
	struct cl_profile *p = calloc(1, sizeof(*p));
	pid_t pid;
	if (!p)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	bool wanted = !a->no_agent && !cl_profile_load(config_path, p, err) && cl_agent_wanted(p);
	sodium_memzero(p, sizeof(*p));
	free(p);
	if (!wanted)
		return 0;
	char mtu[16];
	snprintf(mtu, sizeof(mtu), "%d", a->mtu);
	char *argv[] = {"meshgate",
	                "agent",
	                "--interface",
	                (char *)a->ifname,
	                "--config-dir",
	                (char *)a->config_dir,
	                "--state-dir",
	                (char *)a->state_dir,
	                "--backend",
	                (char *)a->backend,
	                a->mtu ? "--mtu" : NULL,
	                mtu,
	                NULL};
	if (cl_agent_spawn(argv, tun, &pid, err))
		return -1;
	printf("meshgate: %s: agent %ld follows the gateway's nodes and networks (meshgate status "
	       "--interface %s; log: %s/%s.agent.log)\n",
	       a->ifname, (long)pid, a->ifname, a->state_dir, a->ifname);
	return 0;
}

static int enroll(const struct cl_args *a, const struct cl_tunnel_opts *tun,
                  const char *config_path, struct cl_profile *p, struct cl_err *err)
{
	const struct cl_enroll_opts o = {
	    .server_url = a->server,
	    .ca_file = a->ca,
	    .pin = a->pin,
	    .code = a->code,
	    .login = a->login ? cl_login_enroll : NULL,
	    .name = a->name,
	    .export_path = a->export_path,
	    .qr = a->qr,
	    .full_tunnel = a->full_tunnel,
	    .kill_switch = a->kill_switch,
	    .config_dir = a->config_dir,
	    .tun = *tun,
	    .api_timeout_s = API_TIMEOUT_S,
	    .handshake_timeout_s = a->timeout_s,
	    .stop = &cl_interrupted,
	};
	if (!a->export_path && cl_need_root("bringing a tunnel up", err))
		return -1;
	if (cl_enroll_run(&o, &net, p, err))
		return -1;
	if (!a->export_path)
		after_up(a, tun, config_path, p, false);
	return 0;
}

/* A device enrolled before: bring the saved config up again. */
static int reconnect(const struct cl_args *a, const struct cl_tunnel_opts *tun, char *config_path,
                     size_t size, struct cl_profile *p, struct cl_err *err)
{
	if (cl_need_root("bringing a tunnel up", err) ||
	    cl_need_enrolled(a, config_path, size, err))
		return -1;
	if (cl_profile_load(config_path, p, err) || cl_make_dir(a->state_dir, err) ||
	    cl_tunnel_check(tun, err))
		return -1;
	/* the choices of this `up` join the saved config, for the next ones */
	if ((a->full_tunnel && !p->full_tunnel) || (a->kill_switch && !p->kill_switch)) {
		p->full_tunnel |= a->full_tunnel;
		p->kill_switch |= a->kill_switch;
		if (cl_profile_save(config_path, p, err))
			return -1;
	}
	if (cl_connect(&net, tun, p, a->timeout_s, &cl_interrupted, NULL, err))
		return -1;
	after_up(a, tun, config_path, p, true);
	return 0;
}

static int run(const struct cl_args *a)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	struct cl_err err = {0};
	char config_path[4096];
	struct cl_profile *p = calloc(1, sizeof(*p));
	if (!p)
		return CL_EXIT_FAILURE;
	cl_profile_path(a->config_dir, a->ifname, config_path, sizeof(config_path));
	int rc = a->code || a->login
	             ? enroll(a, &tun, config_path, p, &err)
	             : reconnect(a, &tun, config_path, sizeof(config_path), p, &err);
	if (!rc && !a->export_path && arm_kill_switch(&tun, config_path, &err))
		rc = -1;
	if (!rc && a->mtu && !a->export_path && (rc = nl_link_set_mtu(a->ifname, (unsigned)a->mtu)))
		rc = cl_fail(&err, CL_EXIT_TUNNEL, "cannot set the MTU of %s to %d: %s", a->ifname,
		             a->mtu, strerror(-rc));
	if (!rc && !a->export_path && start_agent(a, &tun, config_path, &err))
		fprintf(stderr, "meshgate: warning: the tunnel is up, without its agent: %s\n",
		        err.msg);
	sodium_memzero(p, sizeof(*p));
	free(p);
	return rc ? cl_report(&err) : 0;
}

const struct cl_command cl_cmd_up = {
    .name = "up",
    .options = CL_OPT_SERVER | CL_OPT_CA | CL_OPT_PIN | CL_OPT_TIMEOUT | CL_OPT_NAME |
               CL_OPT_EXPORT | CL_OPT_QR | CL_OPT_NO_AGENT | CL_OPT_FULL_TUNNEL |
               CL_OPT_KILL_SWITCH | CL_OPT_MTU | CL_OPT_LOGIN,
    .takes_code = true,
    .check = check,
    .run = run,
};
