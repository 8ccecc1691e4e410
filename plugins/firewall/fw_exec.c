/* One process fed on stdin: how the whole policy reaches iptables-restore
 * and ipset in one batch each, through the one spawner (lib/spawn.h), so
 * that they start with SIGTERM and SIGHUP unblocked although the core blocks
 * them in this thread, and are stopped if they hang (a held xtables lock). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw.h"
#include "spawn.h"

int fw_exec(char *const argv[], const char *input, size_t len, char **output, char *err,
            size_t errlen)
{
	struct mg_spawn s = {.argv = argv, .input = input, .input_len = len};
	struct mg_spawn_result r;
	int rc = mg_spawn_run(&s, &r, err, errlen);

	if (rc)
		return rc;
	if (!mg_spawn_succeeded(&r)) {
		mg_spawn_describe(argv[0], &r, err, errlen);
		rc = -EIO;
	} else if (output && r.out_truncated) {
		snprintf(err, errlen, "%s: more than %u bytes of output", argv[0],
		         MG_SPAWN_MAX_OUTPUT);
		rc = -E2BIG;
	} else if (output) {
		*output = r.out;
		r.out = NULL;
	}
	mg_spawn_result_free(&r);
	return rc;
}
