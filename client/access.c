#include "access.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_client.h"
#include "clock.h"
#include "follow.h"
#include "wg.h"

#define ASK_TIMEOUT_S  5
#define ASK_SILENT_MS  5000  /* silent, access not known expired: ask this often */
#define ASK_EXPIRED_MS 30000 /* access expired: ask this often */
#define REGISTER_PATH  "/api/v1/register"

/* One question, with copies of what it needs: the thread never touches
 * the agent's memory. */
struct cl_access_check {
	pthread_t thread;
	pthread_mutex_t lock;
	bool done;
	/* in */
	struct cl_api_options opt;
	char server_url[CL_URL_MAX], ca[4096], pin[CL_PIN_TEXT_MAX];
	json_t *request;
	/* out */
	int exit_code; /* CL_EXIT_OK: the device is registered and active */
	char message[256];
};

static void *ask(void *arg)
{
	struct cl_access_check *c = arg;
	struct cl_err err = {0};
	struct cl_api *api = NULL;
	char *body = NULL;
	size_t len = 0;
	if (!cl_api_open(&api, &c->opt, &err))
		cl_api_post(api, "access check", REGISTER_PATH, c->request, &body, &len, &err);
	cl_api_close(api);
	free(body);
	pthread_mutex_lock(&c->lock);
	c->exit_code = err.exit_code;
	snprintf(c->message, sizeof(c->message), "%s", err.msg);
	c->done = true;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void check_free(struct cl_access_check *c)
{
	json_decref(c->request);
	pthread_mutex_destroy(&c->lock);
	sodium_memzero(c, sizeof(*c));
	free(c);
}

/* The register request of this device, as its enrolment sent it; NULL
 * when the config holds no token (enrolled by an older client). */
static json_t *register_request(const struct cl_profile *p)
{
	wg_key pub;
	char key[WG_KEY_B64_LEN], addr[CL_PREFIX_STRLEN];
	if (!*p->register_token || !*p->device_id || !*p->server_url ||
	    wg_key_public_from_private(pub, p->private_key))
		return NULL;
	wg_key_to_base64(key, pub);
	cl_prefix_format(&p->address, addr, sizeof(addr));
	return json_pack("{s:s, s:s, s:s, s:s}", "device_id", p->device_id, "register_token",
	                 p->register_token, "public_key", key, "address", addr);
}

static void start_check(struct cl_access *acc, const struct cl_profile *p, const char *config_path)
{
	struct cl_access_check *c = calloc(1, sizeof(*c));
	if (!c || !(c->request = register_request(p))) {
		free(c);
		return;
	}
	pthread_mutex_init(&c->lock, NULL);
	snprintf(c->server_url, sizeof(c->server_url), "%s", p->server_url);
	snprintf(c->pin, sizeof(c->pin), "%s", p->pin);
	if (*p->ca_file)
		cl_follow_ca_path(config_path, p->ca_file, c->ca, sizeof(c->ca));
	c->opt = (struct cl_api_options){.server_url = c->server_url,
	                                 .ca_file = *c->ca ? c->ca : NULL,
	                                 .pin = *c->pin && !*c->ca ? c->pin : NULL,
	                                 .timeout_s = ASK_TIMEOUT_S};
	if (pthread_create(&c->thread, NULL, ask, c)) {
		check_free(c);
		return;
	}
	acc->running = c;
}

/* Takes in the answer of the question in flight, if it came. */
static void take_answer(struct cl_access *acc)
{
	struct cl_access_check *c = acc->running;
	pthread_mutex_lock(&c->lock);
	bool done = c->done;
	pthread_mutex_unlock(&c->lock);
	if (!done)
		return;
	pthread_join(c->thread, NULL);
	acc->running = NULL;
	if (c->exit_code == CL_EXIT_ACCESS_EXPIRED) {
		if (!acc->expired)
			printf("meshgate: access ended: %s (probing slowly until it is extended)\n",
			       c->message);
		acc->expired = true;
		cl_sanitize(c->message, acc->message, sizeof(acc->message));
		acc->checked_at = cl_unix_ms();
	} else if (c->exit_code == CL_EXIT_OK) {
		acc->expired = false; /* registered and active: the silence is the path's */
		acc->message[0] = '\0';
		acc->checked_at = cl_unix_ms();
	} /* else the server could not be asked: what was known stands */
	fflush(stdout);
	check_free(c);
}

bool cl_access_on_silence(struct cl_access *acc, const struct cl_profile *p,
                          const char *config_path)
{
	long long now = cl_mono_ms();
	if (acc->running)
		take_answer(acc);
	if (!acc->running && now >= acc->next_check) {
		acc->next_check = now + (acc->expired ? ASK_EXPIRED_MS : ASK_SILENT_MS);
		start_check(acc, p, config_path);
	}
	return acc->expired;
}

void cl_access_on_answer(struct cl_access *acc)
{
	if (acc->expired) {
		printf("meshgate: the gateway answers again: access is back\n");
		fflush(stdout);
	}
	acc->expired = false;
	acc->message[0] = '\0';
	acc->next_check = 0;
}

json_t *cl_access_json(const struct cl_access *acc)
{
	json_t *o = json_pack("{s:s}", "state", acc->expired ? "expired" : "ok");
	if (acc->expired)
		json_object_set_new(o, "message", json_string(acc->message));
	json_object_set_new(o, "checked_at",
	                    acc->checked_at ? json_integer(acc->checked_at) : json_null());
	return o;
}

void cl_access_stop(struct cl_access *acc)
{
	if (!acc->running)
		return;
	pthread_join(acc->running->thread, NULL);
	check_free(acc->running);
	acc->running = NULL;
}
