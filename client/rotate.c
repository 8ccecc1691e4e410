#include "rotate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_client.h"
#include "clock.h"
#include "config_file.h"
#include "follow.h"
#include "wg.h"

#define REQUEST_TIMEOUT_S 2
/* The switch is asked again for this long: meanwhile the device's packets
 * are staged (128 a peer: 1.28 s of a ping every 10 ms). */
#define SWITCH_TRY_MS     1000
#define SWITCH_RETRY_MS   100
#define HANDSHAKE_WAIT_MS 5000
#define HANDSHAKE_POLL_MS 10
#define HANDSHAKE_ANEW_MS 250

/* What the rotation works with: the config and the gateway's API. */
struct rotation {
	const struct cl_rotate_opts *o;
	struct cl_profile p;
	struct cl_api *api;
	char next_public[WG_KEY_B64_LEN];
};

/* The gateway answered: it refused (the request's outcome is known) rather
 * than could not be asked. */
static bool refused(const struct cl_err *err)
{
	return err->exit_code == CL_EXIT_CODE_INVALID || err->exit_code == CL_EXIT_ACCESS_EXPIRED;
}

static int open_api(struct rotation *r, struct cl_err *err)
{
	const struct cl_profile *p = &r->p;
	char ca[CL_TRUST_PATH + 4096] = "";
	if (!*p->server_url || !*p->register_token || !*p->device_id)
		return cl_fail(err, CL_EXIT_FAILURE,
		               "%s has no enrolment server or register token in its config (an "
		               "older client enrolled it): its key cannot be rotated",
		               r->o->tun.ifname);
	if (*p->ca_file)
		cl_follow_ca_path(r->o->config_path, p->ca_file, ca, sizeof(ca));
	struct cl_api_options opt = {.server_url = p->server_url,
	                             .ca_file = *ca ? ca : NULL,
	                             .pin = *p->pin && !*ca ? p->pin : NULL,
	                             .timeout_s = REQUEST_TIMEOUT_S,
	                             .stop = r->o->stop};
	return cl_api_open(&r->api, &opt, err);
}

/* POST /api/v1/devices/ID/STEP {register_token, public_key: the next key's}. */
static int ask(struct rotation *r, const char *step, struct cl_err *err)
{
	char path[CL_DEVICE_ID_MAX + 64], *body = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "/api/v1/devices/%s/%s", r->p.device_id, step);
	json_t *req = json_pack("{s:s, s:s}", "register_token", r->p.register_token, "public_key",
	                        r->next_public);
	int rc = req ? cl_api_post(r->api, step, path, req, &body, &len, err)
	             : cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	json_decref(req);
	if (body)
		sodium_memzero(body, len);
	free(body);
	return rc;
}

/* The switch, asked again while the gateway cannot be reached. */
static int ask_switch(struct rotation *r, struct cl_err *err)
{
	long long start = cl_mono_ms();
	for (;;) {
		struct cl_err once = {0};
		if (!ask(r, "switch-key", &once))
			return 0;
		if (refused(&once) || cl_mono_ms() - start >= SWITCH_TRY_MS ||
		    (r->o->stop && *r->o->stop)) {
			*err = once;
			return -1;
		}
		nanosleep(&(struct timespec){.tv_nsec = SWITCH_RETRY_MS * 1000000L}, NULL);
	}
}

/* The device's handshake under the next key started anew: a key change
 * (here to a throwaway key and back) is the one thing that lets WireGuard
 * send a new initiation before its 5 s retry. Needed when the gateway
 * started its own handshake at the same moment as the device: each took
 * the other's initiation and waits for the other's data
 * (plugins/wireguard/takeover.h). What the device staged is kept. */
static void handshake_anew(struct rotation *r)
{
	uint8_t throwaway[CL_KEY_LEN];
	struct cl_err ignored = {0};
	if (!wg_key_generate_private(throwaway))
		cl_tunnel_set_key(&r->o->tun, throwaway, &ignored);
	sodium_memzero(throwaway, sizeof(throwaway));
	cl_tunnel_set_key(&r->o->tun, r->p.next_private_key, &ignored);
}

/* Until the peer has a handshake newer than `before` (the latest before the
 * key change): the gateway took the new key. Without one, the handshake is
 * started anew after HANDSHAKE_ANEW_MS, then after twice as long each time
 * (a slow path is not cut short for good). */
static bool wait_handshake(struct rotation *r, const struct timespec *before, long *waited_ms,
                           int *anew)
{
	long long start = cl_mono_ms(), next = start + HANDSHAKE_ANEW_MS;
	long long gap = HANDSHAKE_ANEW_MS;
	while (cl_mono_ms() - start < HANDSHAKE_WAIT_MS && !(r->o->stop && *r->o->stop)) {
		struct timespec at;
		struct cl_err ignored = {0};
		if (!cl_tunnel_last_handshake(&r->o->tun, r->p.server_public_key, &at, &ignored) &&
		    (at.tv_sec > before->tv_sec ||
		     (at.tv_sec == before->tv_sec && at.tv_nsec > before->tv_nsec))) {
			*waited_ms = (long)(cl_mono_ms() - start);
			return true;
		}
		if (cl_mono_ms() >= next) {
			handshake_anew(r);
			(*anew)++;
			gap *= 2;
			next = cl_mono_ms() + gap;
		}
		nanosleep(&(struct timespec){.tv_nsec = HANDSHAKE_POLL_MS * 1000000L}, NULL);
	}
	return false;
}

/* The config without the next key: the gateway refused it for good. */
static void drop_next_key(struct rotation *r)
{
	struct cl_err ignored = {0};
	sodium_memzero(r->p.next_private_key, CL_KEY_LEN);
	r->p.has_next_key = false;
	cl_profile_save(r->o->config_path, &r->p, &ignored);
}

static int rotate(struct rotation *r, long *waited_ms, struct cl_err *err)
{
	const char *ifname = r->o->tun.ifname;
	wg_key pub;
	if (cl_profile_load(r->o->config_path, &r->p, err))
		return -1;
	if (!cl_tunnel_is_up(&r->o->tun))
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up", ifname);
	bool resumed = r->p.has_next_key;
	/* 1. saved before anyone hears of it */
	if (!resumed) {
		if (wg_key_generate_private(r->p.next_private_key))
			return cl_fail(err, CL_EXIT_FAILURE, "cannot make a key pair");
		r->p.has_next_key = true;
		if (cl_profile_save(r->o->config_path, &r->p, err))
			return -1;
	}
	wg_key_public_from_private(pub, r->p.next_private_key);
	wg_key_to_base64(r->next_public, pub);
	if (open_api(r, err))
		return -1;
	/* 2. resumed, the gateway may have switched already: its refusal of
	 * the next key (it is the device's key now) is then no reason to stop */
	struct cl_err next_err = {0};
	if (ask(r, "next-key", &next_err) && (!resumed || !refused(&next_err))) {
		*err = next_err;
		if (refused(err))
			drop_next_key(r);
		return -1;
	}
	/* 3. */
	struct timespec before;
	if (cl_tunnel_last_handshake(&r->o->tun, r->p.server_public_key, &before, err) ||
	    cl_tunnel_set_key(&r->o->tun, r->p.next_private_key, err))
		return -1;
	/* 4. */
	if (ask_switch(r, err)) {
		struct cl_err back = {0};
		if (cl_tunnel_set_key(&r->o->tun, r->p.private_key, &back))
			fprintf(stderr, "meshgate: %s: %s\n", ifname, back.msg);
		if (refused(err))
			drop_next_key(r);
		return -1;
	}
	/* 5. the gateway's answer made the new key the device's */
	*waited_ms = -1;
	int anew = 0;
	if (!wait_handshake(r, &before, waited_ms, &anew))
		fprintf(stderr,
		        "meshgate: %s: the gateway switched to the new key, but no handshake "
		        "under it within %d s\n",
		        ifname, HANDSHAKE_WAIT_MS / 1000);
	if (anew)
		fprintf(stderr,
		        "meshgate: %s: the handshake under the new key started anew %d times\n",
		        ifname, anew);
	memcpy(r->p.private_key, r->p.next_private_key, CL_KEY_LEN);
	sodium_memzero(r->p.next_private_key, CL_KEY_LEN);
	r->p.has_next_key = false;
	return cl_profile_save(r->o->config_path, &r->p, err);
}

int cl_rotate_key(const struct cl_rotate_opts *o, long *waited_ms, struct cl_err *err)
{
	long ignored;
	struct rotation *r = calloc(1, sizeof(*r));
	if (!r)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	r->o = o;
	int rc = rotate(r, waited_ms ? waited_ms : &ignored, err);
	cl_api_close(r->api);
	sodium_memzero(r, sizeof(*r));
	free(r);
	return rc;
}
