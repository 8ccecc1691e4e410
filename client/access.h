/* Time-limited access, as the agent sees it. When its user's access ends,
 * the gateway removes the device's peer: the tunnel goes silent, and
 * nothing can be asked through it any more. So when the probes go
 * unanswered, the agent asks the gateway's public API (the enrolment's
 * server, with its trust) why, by registering its key again with the
 * token of its enrolment: an active device gets the same answer as at
 * enrolment, one whose access has ended gets 403 access_expired with the
 * moment it ended. While access is expired the agent backs off (it probes
 * slowly, switches no node, asks again rarely) and comes back by itself
 * once a probe is answered again (set-access extended it).
 *
 * The question runs on a thread of its own, so that a slow or unreachable
 * server never holds up the agent's probes and switches. */
#ifndef MESHGATE_CLIENT_ACCESS_H
#define MESHGATE_CLIENT_ACCESS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "config_file.h"

#define CL_ACCESS_PROBE_MS 1000 /* the agent's probes while access is expired */

struct cl_access_check;

struct cl_access {
	bool expired;
	char message[256];               /* the gateway's words (when it ended), sanitised */
	long long checked_at;            /* unix ms of the last answer */
	long long next_check;            /* monotonic ms; 0: at the next silence */
	struct cl_access_check *running; /* the question in flight, or NULL */
};

/* The tunnel is silent: asks why, at most every few seconds (rarely once
 * access is known expired), and takes in an answer that came. Returns
 * true while access is expired: the agent then holds still. */
bool cl_access_on_silence(struct cl_access *acc, const struct cl_profile *p,
                          const char *config_path);

/* A probe was answered: access is not expired (any more). */
void cl_access_on_answer(struct cl_access *acc);

/* {"state": "ok"|"expired", "message", "checked_at"} for the status file. */
json_t *cl_access_json(const struct cl_access *acc);

/* Waits for a question in flight and frees it (the agent's end). */
void cl_access_stop(struct cl_access *acc);

#endif
