/* meshgate down: the tunnel removed; with --forget also the saved config. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "cmd.h"
#include "killswitch.h"
#include "resolver.h"
#include "tunnel.h"

static int run(const struct cl_args *a)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	struct cl_err err = {0};
	char path[4096];

	cl_profile_path(a->config_dir, a->ifname, path, sizeof(path));
	bool enrolled = access(path, F_OK) == 0;
	/* the agent first, or it would see its tunnel go and act on it */
	if (cl_agent_stop(&tun, &err))
		return cl_report(&err);
	int rc = cl_tunnel_down(&tun, a->forget && enrolled, &err);
	if (rc && err.exit_code != CL_EXIT_NOT_FOUND)
		return cl_report(&err);
	cl_resolver_remove(a->ifname);
	/* last, and also when the tunnel was gone already: the device stays
	 * blocked until nothing of the tunnel is left */
	struct cl_err ks_err = {0};
	if (cl_killswitch_state(a->ifname, false) != CL_KILLSWITCH_OFF &&
	    cl_killswitch_remove(a->ifname, &ks_err))
		return cl_report(&ks_err);
	if (rc)
		return cl_report(&err);
	if (a->forget && enrolled && unlink(path))
		return cl_fail(&err, CL_EXIT_FAILURE, "cannot remove %s: %s", path,
		               strerror(errno)),
		       cl_report(&err);
	if (a->forget) {
		cl_profile_ca_path(a->config_dir, a->ifname, path, sizeof(path));
		unlink(path); /* the CA copy of the enrolment, if any */
	}
	printf("meshgate: %s is down%s\n", a->ifname,
	       a->forget && enrolled ? " and its config removed" : "");
	return 0;
}

const struct cl_command cl_cmd_down = {
    .name = "down",
    .options = CL_OPT_FORGET,
    .run = run,
};
