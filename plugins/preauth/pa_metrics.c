/* preauth.metrics: the devices by state and role (from the cache of
 * devices, one pass), and the outcomes of redeem and register counted
 * where they are decided (docs/metrics.md). */
#include <string.h>

#include "metrics.h"
#include "preauth.h"

json_t *pa_count_outcome(struct pa *pa, const char *step, json_t *reply)
{
	/* a deferred reply (NULL) waits for the group commit of an accepted request */
	const char *error = mg_reply_error(reply);
	if (!error && !strcmp(step, "register") && pa->register_repeated)
		return reply; /* a device already active asked again: no new onboarding */
	const char *outcome = error ? error : "ok";
	json_t *counts = json_object_get(pa->outcomes, step);
	if (!counts) {
		counts = json_object();
		json_object_set_new(pa->outcomes, step, counts);
	}
	json_object_set_new(counts, outcome,
	                    json_integer(json_integer_value(json_object_get(counts, outcome)) + 1));
	return reply;
}

/* state -> role -> count */
static json_t *devices_by_state_and_role(struct pa *pa)
{
	json_t *by_state = json_object(), *device;
	const char *id;
	json_object_foreach(pa->devices, id, device)
	{
		const char *state = json_string_value(json_object_get(device, "state"));
		const char *role = json_string_value(json_object_get(device, "role"));
		state = state ? state : "";
		role = role ? role : "";
		json_t *roles = json_object_get(by_state, state);
		if (!roles) {
			roles = json_object();
			json_object_set_new(by_state, state, roles);
		}
		json_object_set_new(
		    roles, role,
		    json_integer(json_integer_value(json_object_get(roles, role)) + 1));
	}
	return by_state;
}

static void add_devices(struct pa *pa, json_t *families)
{
	json_t *family =
	    metrics_family(families, "meshgate_devices", "gauge",
	                   "Devices by state (pending, active, disabled, expired) and role");
	json_t *by_state = devices_by_state_and_role(pa), *roles, *count;
	const char *state, *role;
	json_object_foreach(by_state, state, roles)
	{
		json_object_foreach(roles, role, count)
		{
			metrics_sample(family,
			               json_pack("{s:s, s:s}", "state", state, "role", role),
			               (double)json_integer_value(count));
		}
	}
	json_decref(by_state);
}

static void add_outcomes(struct pa *pa, json_t *families)
{
	json_t *ok = metrics_family(families, "meshgate_onboardings_total", "counter",
	                            "Redeems and registers accepted, by step");
	json_t *refused =
	    metrics_family(families, "meshgate_onboarding_refusals_total", "counter",
	                   "Redeems and registers refused, by step and reason (the error code)");
	static const char *const steps[] = {"redeem", "register"};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		json_t *counts = json_object_get(pa->outcomes, steps[i]), *count;
		const char *outcome;
		/* the accepted of both steps always, so that a rate starts at 0 */
		metrics_sample(ok, json_pack("{s:s}", "step", steps[i]),
		               (double)json_integer_value(json_object_get(counts, "ok")));
		json_object_foreach(counts, outcome, count)
		{
			if (strcmp(outcome, "ok"))
				metrics_sample(
				    refused,
				    json_pack("{s:s, s:s}", "step", steps[i], "reason", outcome),
				    (double)json_integer_value(count));
		}
	}
}

json_t *pa_metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct pa *pa = arg;
	(void)service;
	json_t *bad = mg_request_check(ctx, request, fields);
	if (bad)
		return bad;
	json_t *families = json_array();
	add_devices(pa, families);
	add_outcomes(pa, families);
	return metrics_reply(families);
}
