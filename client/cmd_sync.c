/* meshgate sync: the networks of the device's role followed, once
 * (follow.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "follow.h"

static int run(const struct cl_args *a)
{
	char path[4096];
	struct cl_err err = {0};
	struct cl_follow_result *res = calloc(1, sizeof(*res));
	int rc = 0;
	if (!res)
		return CL_EXIT_FAILURE;
	struct cl_follow_opts o = {
	    {a->ifname, a->state_dir, a->backend}, path, CL_FOLLOW_TIMEOUT_S, &cl_interrupted};
	if (cl_need_root("changing the tunnel's routes", &err) ||
	    cl_need_enrolled(a, path, sizeof(path), &err) || cl_follow_sync(&o, res, &err))
		rc = cl_report(&err);
	else
		cl_follow_print(stdout, a->ifname, res, true);
	free(res);
	return rc;
}

const struct cl_command cl_cmd_sync = {
    .name = "sync",
    .run = run,
};
