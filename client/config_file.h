/* The device's config: wg-quick format, so `wg-quick` and the official
 * WireGuard apps read it as it is, plus meshgate's own fields as comments
 * ("# MeshgateServer = URL") that those tools ignore. It holds the device's
 * private key: always written with mode 0600, atomically (temp + rename). */
#ifndef MESHGATE_CLIENT_CONFIG_FILE_H
#define MESHGATE_CLIENT_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "reply.h"

#define CL_PIN_TEXT_MAX 96   /* "sha256//" and 44 of base64, or 64 hex digits */
#define CL_TRUST_PATH   1024 /* the saved CA file */

struct cl_profile {
	char server_url[CL_URL_MAX]; /* "" in an exported config */
	char device_id[CL_DEVICE_ID_MAX];
	/* the token of the enrolment: the agent registers again with it to
	 * learn whether the device's access has ended (access.h) */
	char register_token[CL_REGISTER_TOKEN_MAX];
	/* Meshgate's own, for `meshgate sync` (none in an exported config):
	 * the API inside the tunnel and the trust given at enrolment, a pin
	 * or a CA file (a name without '/' is in the config's folder); both
	 * "": the system's trust store. */
	char vpn_api[CL_URL_MAX];
	char pin[CL_PIN_TEXT_MAX];
	char ca_file[CL_TRUST_PATH];
	uint8_t private_key[CL_KEY_LEN];
	/* a key rotation under way ("# MeshgateNextKey = KEY", rotate.h): the
	 * next private key, saved before the gateway hears of it, so that a
	 * crash resumes with the same key */
	uint8_t next_private_key[CL_KEY_LEN];
	bool has_next_key;
	struct cl_prefix address;
	char dns[CL_MAX_DNS][CL_HOST_MAX];
	size_t n_dns;
	uint8_t server_public_key[CL_KEY_LEN];
	struct cl_endpoint endpoint;
	struct cl_prefix allowed_ips[CL_MAX_ALLOWED_IPS];
	size_t n_allowed_ips;
	unsigned keepalive;
	/* the gateway nodes ("# MeshgateGateway = NAME KEY ENDPOINT") and the
	 * probe ("# MeshgateProbe = IP:PORT"): what the agent follows; the
	 * [Peer] is the node in use */
	struct cl_nodes nodes;
	/* The device's own choices, kept across reconnects and syncs:
	 * everything through the gateway (`up --full-tunnel`, "# MeshgateFullTunnel
	 * = yes"; the gateway may also say so, with 0.0.0.0/0 among the
	 * networks), and the kill switch ("# MeshgateKillSwitch = yes"). */
	bool full_tunnel;
	bool kill_switch;
};

/* Fills a profile from a decoded redeem reply and the device's key. */
void cl_profile_from_reply(struct cl_profile *p, const char *server_url,
                           const struct cl_redeem_reply *r, const uint8_t private_key[CL_KEY_LEN]);

/* The wg-quick text; with_meta adds the meshgate comment lines. Returns a
 * malloc'd string the caller wipes with cl_profile_text_free(), or NULL. */
char *cl_profile_render(const struct cl_profile *p, bool with_meta);
void cl_profile_text_free(char *text);

/* Parses what cl_profile_render wrote (and plain wg-quick files with one peer). */
int cl_profile_parse(const char *text, struct cl_profile *p, struct cl_err *err);

/* Writes text to path with mode 0600: a temp file in the same folder, fsync,
 * rename, so a crash never leaves a half-written config. */
int cl_write_private_file(const char *path, const char *text, struct cl_err *err);

/* Creates dir (and its parents) with mode 0700 when missing. */
int cl_make_dir(const char *dir, struct cl_err *err);

/* The config of interface ifname in dir: DIR/IFNAME.conf. */
int cl_profile_path(const char *dir, const char *ifname, char *buf, size_t size);

/* The copy of --ca that `meshgate sync` trusts: DIR/IFNAME.ca.pem. */
int cl_profile_ca_path(const char *dir, const char *ifname, char *buf, size_t size);

int cl_profile_save(const char *path, const struct cl_profile *p, struct cl_err *err);
int cl_profile_load(const char *path, struct cl_profile *p, struct cl_err *err);

#endif
