#include "follow.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_client.h"
#include "clock.h"
#include "reply.h"
#include "trust.h"

#define DEVICE_CONFIG_PATH "/api/v1/device/config"

void cl_follow_ca_path(const char *config_path, const char *ca_file, char *out, size_t size)
{
	const char *slash = strrchr(config_path, '/');
	if (strchr(ca_file, '/') || !slash)
		snprintf(out, size, "%s", ca_file);
	else
		snprintf(out, size, "%.*s/%s", (int)(slash - config_path), config_path, ca_file);
}

/* The request must leave through the tunnel: the gateway knows the device
 * by the source address, which only the tunnel gives. */
static bool inside_tunnel(const struct cl_profile *p)
{
	struct cl_endpoint e;
	struct cl_prefix host;
	if (cl_vpn_api_parse(p->vpn_api, &e) || cl_prefix_parse(e.host, false, &host))
		return false;
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (cl_prefix_covers(&p->allowed_ips[i], &host))
			return true;
	return false;
}

/* The CAs of the answer join the trust bundle (trust.h): the answer came
 * over a connection verified with the bundle as it is (or the pin), so
 * the trust passes on through an authenticated channel. A config that
 * kept only a pin gets its bundle now: the pinned certificate and these. */
static int follow_trust(const struct cl_follow_opts *o, const struct cl_api *api,
                        const struct cl_config_reply *reply, char ca_file[CL_TRUST_PATH],
                        struct cl_follow_result *res, struct cl_err *err)
{
	char to[CL_TRUST_PATH + 4096];
	if (!*reply->api_cas || !*cl_api_anchor(api))
		return 0; /* no CAs told, or the system's store */
	if (!*ca_file)
		snprintf(ca_file, CL_TRUST_PATH, "%s.ca.pem", o->tun.ifname);
	cl_follow_ca_path(o->config_path, ca_file, to, sizeof(to));
	return cl_trust_bundle_write(cl_api_anchor(api), reply->api_cas, to, &res->cas_added, err);
}

/* The device config, asked with the trust of the enrolment (the trust
 * bundle, or the pin; TLS is always verified), whose CAs then join the
 * bundle, named in ca_file (p's, or a new one). */
static int fetch(const struct cl_follow_opts *o, const struct cl_profile *p,
                 struct cl_config_reply *reply, char ca_file[CL_TRUST_PATH],
                 struct cl_follow_result *res, struct cl_err *err)
{
	char ca[CL_TRUST_PATH + 4096], *body = NULL;
	size_t len = 0;
	struct cl_api *api = NULL;
	if (*p->ca_file)
		cl_follow_ca_path(o->config_path, p->ca_file, ca, sizeof(ca));
	struct cl_api_options opt = {.server_url = p->vpn_api,
	                             .ca_file = *p->ca_file ? ca : NULL,
	                             .pin = *p->pin && !*p->ca_file ? p->pin : NULL,
	                             .timeout_s = o->timeout_s,
	                             .stop = o->stop};
	int rc = cl_api_open(&api, &opt, err);
	if (!rc)
		rc = cl_api_get(api, "device config", DEVICE_CONFIG_PATH, &body, &len, err);
	if (!rc)
		rc = cl_config_reply_decode(body, len, reply, err);
	if (!rc)
		rc = follow_trust(o, api, reply, ca_file, res, err);
	free(body);
	cl_api_close(api);
	return rc;
}

bool cl_nodes_same(const struct cl_nodes *a, const struct cl_nodes *b)
{
	if (a->n_gateways != b->n_gateways || a->has_probe != b->has_probe ||
	    a->pmtu_port != b->pmtu_port ||
	    (a->has_probe &&
	     (strcmp(a->probe.host, b->probe.host) || a->probe.port != b->probe.port)))
		return false;
	for (size_t i = 0; i < a->n_gateways; i++) {
		const struct cl_gateway *x = &a->gateways[i], *y = &b->gateways[i];
		/* "active" is not saved: the probe tells it */
		if (strcmp(x->name, y->name) || memcmp(x->public_key, y->public_key, CL_KEY_LEN) ||
		    !cl_endpoint_equal(&x->endpoint, &y->endpoint) ||
		    x->n_endpoints != y->n_endpoints)
			return false;
		for (size_t j = 0; j < x->n_endpoints; j++)
			if (!cl_endpoint_equal(&x->endpoints[j], &y->endpoints[j]))
				return false;
	}
	return true;
}

static bool same_dns(const struct cl_profile *a, const struct cl_profile *b)
{
	if (a->n_dns != b->n_dns)
		return false;
	for (size_t i = 0; i < a->n_dns; i++)
		if (strcmp(a->dns[i], b->dns[i]))
			return false;
	return true;
}

/* The new profile from the reply, and what differs from the old one. */
static int follow_reply(const struct cl_profile *old, const struct cl_config_reply *r,
                        const char *ca_file, struct cl_profile *p, struct cl_follow_result *res,
                        struct cl_err *err)
{
	char id[CL_DEVICE_ID_MAX * 2];
	if (strcmp(r->device_id, old->device_id)) {
		cl_sanitize(r->device_id, id, sizeof(id));
		return cl_fail(err, CL_EXIT_SERVER,
		               "the gateway answered for device %s, but this is device %s", id,
		               old->device_id);
	}
	if (strcmp(r->state, "active"))
		return cl_fail(err, CL_EXIT_SERVER, "the gateway says this device is %s", r->state);
	*p = *old;
	memcpy(p->allowed_ips, r->allowed_ips, sizeof(p->allowed_ips));
	p->n_allowed_ips = r->n_allowed_ips;
	memcpy(p->dns, r->dns, sizeof(p->dns));
	p->n_dns = r->n_dns;
	if (*r->vpn_api)
		memcpy(p->vpn_api, r->vpn_api, sizeof(p->vpn_api));
	if (r->nodes.n_gateways || r->nodes.has_probe)
		p->nodes = r->nodes; /* a gateway of an older version tells none */
	snprintf(p->ca_file, sizeof(p->ca_file), "%s", ca_file);

	res->nodes = r->nodes;
	snprintf(res->device_id, sizeof(res->device_id), "%s", r->device_id);
	snprintf(res->role, sizeof(res->role), "%s", r->role);
	res->rotate = r->rotate;
	res->n_added = cl_prefix_minus(p->allowed_ips, p->n_allowed_ips, old->allowed_ips,
	                               old->n_allowed_ips, res->added);
	res->n_removed = cl_prefix_minus(old->allowed_ips, old->n_allowed_ips, p->allowed_ips,
	                                 p->n_allowed_ips, res->removed);
	memcpy(res->now, p->allowed_ips, sizeof(res->now));
	res->n_now = p->n_allowed_ips;
	res->dns_changed = !same_dns(old, p);
	res->changed = res->n_added || res->n_removed || res->dns_changed ||
	               strcmp(old->vpn_api, p->vpn_api) || strcmp(old->ca_file, p->ca_file) ||
	               res->cas_added || !cl_nodes_same(&old->nodes, &p->nodes);
	return 0;
}

static int sync_profile(const struct cl_follow_opts *o, struct cl_profile *old,
                        struct cl_profile *p, struct cl_follow_result *res, struct cl_err *err)
{
	struct cl_config_reply reply;
	char ca_file[CL_TRUST_PATH];
	const char *ifname = o->tun.ifname;
	if (access(o->config_path, F_OK))
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not enrolled (no %s)", ifname,
		               o->config_path);
	if (cl_profile_load(o->config_path, old, err))
		return -1;
	if (!*old->vpn_api)
		return cl_fail(err, CL_EXIT_SERVER,
		               "the gateway did not say where its API is inside the tunnel when %s "
		               "enrolled (a gateway without meshgate sync, or api.vpn_listen off)",
		               ifname);
	if (!inside_tunnel(old))
		return cl_fail(err, CL_EXIT_SERVER, "the gateway's API %s is not inside the tunnel",
		               old->vpn_api);
	if (!cl_tunnel_is_up(&o->tun))
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up (meshgate up --interface %s)",
		               ifname, ifname);
	memcpy(ca_file, old->ca_file, sizeof(ca_file));
	if (fetch(o, old, &reply, ca_file, res, err))
		return -1;
	res->received_ms = cl_mono_ms();
	if (follow_reply(old, &reply, ca_file, p, res, err))
		return -1;
	if (!res->changed)
		return 0;
	/* the system first: a failure leaves the saved config as it was, and
	 * the next sync tries the same change again */
	if ((res->n_added || res->n_removed) && cl_tunnel_update(&o->tun, old, p, err))
		return -1;
	return cl_profile_save(o->config_path, p, err);
}

int cl_follow_sync(const struct cl_follow_opts *o, struct cl_follow_result *res, struct cl_err *err)
{
	struct cl_profile *old = calloc(1, sizeof(*old)), *p = calloc(1, sizeof(*p));
	int rc = -1;
	memset(res, 0, sizeof(*res));
	if (!old || !p)
		cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	else
		rc = sync_profile(o, old, p, res, err);
	if (old)
		sodium_memzero(old, sizeof(*old)); /* the private key */
	if (p)
		sodium_memzero(p, sizeof(*p));
	free(old);
	free(p);
	return rc;
}

static void print_list(FILE *out, const struct cl_prefix *list, size_t n)
{
	char text[CL_PREFIX_STRLEN];
	for (size_t i = 0; i < n; i++) {
		cl_prefix_format(&list[i], text, sizeof(text));
		fprintf(out, "%s%s", i ? ", " : "", text);
	}
}

void cl_follow_print(FILE *out, const char *ifname, const struct cl_follow_result *res, bool always)
{
	char text[CL_PREFIX_STRLEN];
	if (!res->changed && !always)
		return;
	fprintf(out, "meshgate: %s: %s", ifname,
	        res->n_added || res->n_removed ? "networks changed" : "networks up to date");
	if (*res->role)
		fprintf(out, " (role %s)", res->role);
	fprintf(out, ": ");
	print_list(out, res->now, res->n_now);
	fputc('\n', out);
	for (size_t i = 0; i < res->n_added; i++) {
		cl_prefix_format(&res->added[i], text, sizeof(text));
		fprintf(out, "+ %s\n", text);
	}
	for (size_t i = 0; i < res->n_removed; i++) {
		cl_prefix_format(&res->removed[i], text, sizeof(text));
		fprintf(out, "- %s\n", text);
	}
	if (res->dns_changed)
		fprintf(out, "meshgate: %s: the DNS servers changed (saved in the config)\n",
		        ifname);
	if (res->cas_added)
		fprintf(out, "meshgate: %s: now trusts %zu more API CA%s of the gateway's nodes\n",
		        ifname, res->cas_added, res->cas_added == 1 ? "" : "s");
}

/* Sleeps, unless *stop is or becomes set: the signals that set it are held
 * back until the wait, which lets them in atomically (no lost wake-up). */
static void sleep_unless_stopped(int seconds, volatile sig_atomic_t *stop)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	if (!*stop) {
		struct timespec ts = {.tv_sec = seconds};
		ppoll(NULL, 0, &ts, &old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int cl_follow_watch(const struct cl_follow_opts *o, int interval_s)
{
	char last_error[sizeof(((struct cl_err *)0)->msg)] = "";
	const char *ifname = o->tun.ifname;
	struct cl_follow_result *res = calloc(1, sizeof(*res));
	if (!res) {
		fprintf(stderr, "meshgate: out of memory\n");
		return CL_EXIT_FAILURE;
	}
	printf("meshgate: %s: following the gateway's networks every %d s\n", ifname, interval_s);
	fflush(stdout);
	int rc = 0;
	while (!*o->stop) {
		struct cl_err err = {0};
		if (cl_follow_sync(o, res, &err) == 0) {
			if (*last_error)
				printf("meshgate: %s: the gateway answers again\n", ifname);
			last_error[0] = '\0';
			cl_follow_print(stdout, ifname, res, false);
		} else if (*o->stop) {
			break;
		} else if (access(o->config_path, F_OK)) {
			fprintf(stderr, "meshgate: %s is no longer enrolled (no %s): stopping\n",
			        ifname, o->config_path);
			rc = CL_EXIT_NOT_FOUND;
			break;
		} else if (strcmp(err.msg, last_error)) {
			/* once, not every round: the log stays readable */
			fprintf(stderr, "meshgate: %s (trying again every %d s)\n", err.msg,
			        interval_s);
			snprintf(last_error, sizeof(last_error), "%s", err.msg);
		}
		fflush(stdout);
		fflush(stderr);
		sleep_unless_stopped(interval_s, o->stop);
	}
	if (!rc)
		printf("meshgate: %s: stopped following the networks\n", ifname);
	free(res);
	return rc;
}
