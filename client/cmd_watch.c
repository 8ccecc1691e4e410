/* meshgate watch: meshgate sync every --interval seconds until stopped. */
#include "cmd.h"
#include "follow.h"

static int run(const struct cl_args *a)
{
	char path[4096];
	struct cl_err err = {0};
	struct cl_follow_opts o = {
	    {a->ifname, a->state_dir, a->backend}, path, CL_FOLLOW_TIMEOUT_S, &cl_interrupted};
	if (cl_need_root("changing the tunnel's routes", &err) ||
	    cl_need_enrolled(a, path, sizeof(path), &err))
		return cl_report(&err);
	return cl_follow_watch(&o, a->interval_s);
}

const struct cl_command cl_cmd_watch = {
    .name = "watch",
    .options = CL_OPT_INTERVAL,
    .run = run,
};
