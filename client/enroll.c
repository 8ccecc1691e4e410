#include "enroll.h"

#include <errno.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "tls_pin.h"
#include "trust.h"
#include "wg.h"

static void config_path(const struct cl_enroll_opts *o, char *buf, size_t size)
{
	cl_profile_path(o->config_dir, o->tun.ifname, buf, size);
}

int cl_enroll_preflight(const struct cl_enroll_opts *o, const struct cl_net *net,
                        struct cl_err *err)
{
	char path[4096];
	if (o->export_path) {
		snprintf(path, sizeof(path), "%s", o->export_path);
		const char *d = dirname(path);
		if (access(d, W_OK))
			return cl_fail(err, CL_EXIT_FAILURE, "cannot write into %s: %s", d,
			               strerror(errno));
		return 0;
	}
	config_path(o, path, sizeof(path));
	if (access(path, F_OK) == 0)
		return cl_fail(err, CL_EXIT_FAILURE,
		               "%s exists: %s is enrolled already (meshgate up --interface %s "
		               "reconnects; meshgate down --forget removes it)",
		               path, o->tun.ifname, o->tun.ifname);
	if (cl_make_dir(o->config_dir, err) || cl_make_dir(o->tun.state_dir, err))
		return -1;
	return net->check(&o->tun, err);
}

int cl_enroll_keys(uint8_t private_key[CL_KEY_LEN], uint8_t public_key[CL_KEY_LEN],
                   struct cl_err *err)
{
	if (wg_key_generate_private(private_key) ||
	    wg_key_public_from_private(public_key, private_key))
		return cl_fail(err, CL_EXIT_FAILURE, "cannot generate a key pair");
	return 0;
}

const char *cl_enroll_device_name(const char *name, char *host, size_t size)
{
	if (name)
		return name;
	memset(host, 0, size);
	gethostname(host, size - 1);
	return *host ? host : "device";
}

int cl_enroll_redeem(struct cl_api *api, const char *code, const char *name,
                     struct cl_redeem_reply *reply, struct cl_err *err)
{
	return cl_enroll_redeem_with(api, "redeem", "/api/v1/redeem", "code", code, name, reply,
	                             err);
}

int cl_enroll_redeem_with(struct cl_api *api, const char *what, const char *path,
                          const char *member, const char *proof, const char *name,
                          struct cl_redeem_reply *reply, struct cl_err *err)
{
	char host[256], *body = NULL;
	size_t len = 0;
	json_t *req = json_pack("{s:s, s:s}", member, proof, "name",
	                        cl_enroll_device_name(name, host, sizeof(host)));
	int rc = req ? cl_api_post(api, what, path, req, &body, &len, err)
	             : cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	json_decref(req);
	if (rc == 0)
		rc = cl_redeem_reply_decode(body, len, reply, err);
	if (body) {
		sodium_memzero(body, len);
		free(body);
	}
	return rc;
}

int cl_enroll_register(struct cl_registration *reg, struct cl_err *err)
{
	const struct cl_redeem_reply *r = reg->reply;
	char pub[WG_KEY_B64_LEN], addr[CL_PREFIX_STRLEN], *body = NULL;
	size_t len = 0;
	wg_key_to_base64(pub, reg->public_key);
	cl_prefix_format(&r->address, addr, sizeof(addr));
	json_t *id =
	    r->device_id_is_int ? json_integer(atoll(r->device_id)) : json_string(r->device_id);
	json_t *req = json_pack("{s:o, s:s, s:s, s:s}", "device_id", id, "register_token",
	                        r->register_token, "public_key", pub, "address", addr);
	int rc = req ? cl_api_post(reg->api, "register", "/api/v1/register", req, &body, &len, err)
	             : cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	json_decref(req);
	free(body);
	reg->done = rc == 0;
	return rc;
}

/* The trust of this enrolment, kept for every later call (register,
 * `meshgate sync` through the tunnel, to any node of the cluster): the
 * anchor this redeem was verified with (--ca, or the certificate --pin
 * named) and the CAs of every node the answer names, as one bundle next to
 * the config (trust.h); the pin too, in its canonical form. With neither
 * --ca nor --pin the system's store is the trust, and the answer's CAs play
 * no part. A pin and an answer without CAs (an older gateway): the pin
 * alone, as before. */
static int save_trust(const struct cl_enroll_opts *o, struct cl_profile *p, const char *anchor,
                      const char *api_cas, struct cl_err *err)
{
	struct cl_pin pin;
	char path[4096];
	size_t added;
	if (o->pin && cl_pin_parse(o->pin, &pin) == 0)
		cl_pin_format(&pin, p->pin, sizeof(p->pin));
	if (!*anchor || (o->pin && !*api_cas))
		return 0;
	cl_profile_ca_path(o->config_dir, o->tun.ifname, path, sizeof(path));
	if (cl_trust_bundle_write(anchor, api_cas, path, &added, err))
		return -1;
	snprintf(p->ca_file, sizeof(p->ca_file), "%s.ca.pem", o->tun.ifname);
	return 0;
}

int cl_enroll_save(const struct cl_enroll_opts *o, struct cl_profile *p, const char *anchor,
                   const char *api_cas, struct cl_err *err)
{
	char path[4096];
	if (save_trust(o, p, anchor, api_cas, err))
		return -1;
	config_path(o, path, sizeof(path));
	if (cl_profile_save(path, p, err)) {
		cl_enroll_forget(o, p);
		return -1;
	}
	return 0;
}

void cl_enroll_forget(const struct cl_enroll_opts *o, const struct cl_profile *p)
{
	char path[4096];
	config_path(o, path, sizeof(path));
	unlink(path);
	if (*p->ca_file) { /* the copy save_trust made */
		cl_profile_ca_path(o->config_dir, o->tun.ifname, path, sizeof(path));
		unlink(path);
	}
}

int cl_enroll_export(const struct cl_enroll_opts *o, const struct cl_profile *p,
                     struct cl_registration *reg, struct cl_err *err)
{
	if (cl_export_write(o->export_path, p, err))
		return -1;
	if (cl_enroll_register(reg, err)) {
		unlink(o->export_path);
		return -1;
	}
	if (o->qr) {
		char *text = cl_profile_render(p, false);
		int rc = text ? cl_qr_print(stdout, text, err)
		              : cl_fail(err, CL_EXIT_FAILURE, "cannot render the config");
		cl_profile_text_free(text);
		if (rc)
			return rc;
	}
	printf("meshgate: wrote %s (device %s, address ", o->export_path, p->device_id);
	char addr[CL_PREFIX_STRLEN];
	cl_prefix_format(&p->address, addr, sizeof(addr));
	printf("%s); import it into a WireGuard app\n", addr);
	return 0;
}

int cl_connect(const struct cl_net *net, const struct cl_tunnel_opts *tun,
               const struct cl_profile *p, int timeout_s, volatile sig_atomic_t *stop,
               struct cl_registration *reg, struct cl_err *err)
{
	long waited_ms = 0;
	char addr[CL_PREFIX_STRLEN], endpoint[CL_ENDPOINT_STRLEN];

	if (net->up(tun, p, err))
		return -1;
	if ((stop && *stop) || (reg && cl_enroll_register(reg, err))) {
		/* after a failed register its own message stays: cl_fail keeps the first */
		cl_fail(err, CL_EXIT_TUNNEL, "interrupted");
		net->down(tun, true, NULL);
		return -1;
	}
	if (net->wait_handshake(tun, p, timeout_s, stop, &waited_ms, err)) {
		net->down(tun, true, NULL);
		return -1;
	}
	cl_prefix_format(&p->address, addr, sizeof(addr));
	cl_endpoint_format(&p->endpoint, endpoint, sizeof(endpoint));
	printf("meshgate: %s is up: %s, server %s, handshake after %.1f s\n", tun->ifname, addr,
	       endpoint, (double)waited_ms / 1000.0);
	net->resolver_apply(tun->ifname, p);
	return 0;
}

/* The secrets of one enrolment, wiped at its end. */
struct enrolment {
	uint8_t private_key[CL_KEY_LEN];
	struct cl_redeem_reply reply;
	struct cl_registration reg;
};

/* From the saved bundle on, the register verifies against it like every
 * later call: the server's name may lead to another node of the cluster
 * than the one that answered the redeem. */
static int trust_bundle(const struct cl_enroll_opts *o, const struct cl_profile *p,
                        struct cl_registration *reg, struct cl_err *err)
{
	char path[4096];
	if (!*p->ca_file)
		return 0;
	cl_profile_ca_path(o->config_dir, o->tun.ifname, path, sizeof(path));
	struct cl_api_options opt = {
	    .server_url = o->server_url, .ca_file = path, .timeout_s = o->api_timeout_s};
	struct cl_api *api;
	if (cl_api_open(&api, &opt, err)) {
		cl_enroll_forget(o, p);
		return -1;
	}
	cl_api_close(reg->api);
	reg->api = api;
	return 0;
}

static int enroll(const struct cl_enroll_opts *o, const struct cl_net *net, struct enrolment *e,
                  struct cl_profile *p, struct cl_err *err)
{
	struct cl_api_options opt = {.server_url = o->server_url,
	                             .ca_file = o->ca_file,
	                             .pin = o->pin,
	                             .timeout_s = o->api_timeout_s};
	if (cl_enroll_preflight(o, net, err) ||
	    cl_enroll_keys(e->private_key, e->reg.public_key, err))
		return -1;
	if (cl_api_open(&e->reg.api, &opt, err))
		return -1;
	if (o->login ? o->login(e->reg.api, o->name, o->stop, &e->reply, err)
	             : cl_enroll_redeem(e->reg.api, o->code, o->name, &e->reply, err))
		return -1;
	e->reg.reply = &e->reply;
	cl_profile_from_reply(p, o->server_url, &e->reply, e->private_key);
	p->full_tunnel = o->full_tunnel;
	p->kill_switch = o->kill_switch;
	if (o->export_path)
		return cl_enroll_export(o, p, &e->reg, err);

	if (cl_enroll_save(o, p, cl_api_anchor(e->reg.api), e->reply.api_cas, err) ||
	    trust_bundle(o, p, &e->reg, err))
		return -1;
	int rc = cl_connect(net, &o->tun, p, o->handshake_timeout_s, o->stop, &e->reg, err);
	/* Before the server knows the key the config is worthless: drop it. A
	 * registered device keeps it, so `meshgate up` can retry later. */
	if (rc && !e->reg.done)
		cl_enroll_forget(o, p);
	else if (rc)
		snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
		         "; tunnel removed, retry with: meshgate up --interface %s", o->tun.ifname);
	return rc;
}

int cl_enroll_run(const struct cl_enroll_opts *o, const struct cl_net *net, struct cl_profile *p,
                  struct cl_err *err)
{
	struct enrolment *e = calloc(1, sizeof(*e));
	if (!e)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	memset(p, 0, sizeof(*p));
	int rc = enroll(o, net, e, p, err);
	cl_api_close(e->reg.api);
	sodium_memzero(e, sizeof(*e));
	free(e);
	return rc;
}
