/* meshgate agent: the agent of an enrolled interface in the foreground
 * (agent.h); `meshgate up` starts the same as a daemon. */
#include "agent.h"
#include "cmd.h"

static int run(const struct cl_args *a)
{
	char path[4096];
	struct cl_err err = {0};
	struct cl_agent_opts o = {
	    {a->ifname, a->state_dir, a->backend}, path, &cl_interrupted, (unsigned)a->mtu};
	if (cl_need_root("following the gateway nodes", &err) ||
	    cl_need_enrolled(a, path, sizeof(path), &err))
		return cl_report(&err);
	return cl_agent_run(&o);
}

const struct cl_command cl_cmd_agent = {
    .name = "agent",
    .options = CL_OPT_MTU,
    .run = run,
};
