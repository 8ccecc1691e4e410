/* A device's first connection (`meshgate up --server URL CODE`), step by
 * step: a key pair; the code redeemed for the device's config; the config
 * saved with the trust given for the server (or, with --export, written for
 * a WireGuard app); the tunnel up; the public key registered; the first
 * handshake. Each step is a function of what it is given, so tests drive
 * them one at a time (tests/client/test_enroll.c); cl_enroll_run takes them
 * in order, as `meshgate up` does.
 *
 * What changes the machine's network (the tunnel, the resolver) is reached
 * through struct cl_net: the binary fills it with tunnel.c and resolver.c,
 * a test with stand-ins. Messages for the user go to stdout; a failure
 * leaves its one line and exit class in err. */
#ifndef MESHGATE_CLIENT_ENROLL_H
#define MESHGATE_CLIENT_ENROLL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "api_client.h"
#include "config_file.h"
#include "err.h"
#include "reply.h"
#include "tunnel.h"

/* The tunnel and the resolver, with the signatures of tunnel.h and
 * resolver.h. */
struct cl_net {
	int (*check)(const struct cl_tunnel_opts *o, struct cl_err *err);
	int (*up)(const struct cl_tunnel_opts *o, const struct cl_profile *p, struct cl_err *err);
	int (*wait_handshake)(const struct cl_tunnel_opts *o, const struct cl_profile *p,
	                      int timeout_s, volatile sig_atomic_t *stop, long *waited_ms,
	                      struct cl_err *err);
	int (*down)(const struct cl_tunnel_opts *o, bool missing_ok, struct cl_err *err);
	void (*resolver_apply)(const char *ifname, const struct cl_profile *p);
};

struct cl_enroll_opts {
	const char *server_url; /* --server */
	const char *ca_file;    /* --ca, or NULL */
	const char *pin;        /* --pin, or NULL */
	const char *code;       /* the enrolment code */
	/* --login (login.h): the person logs in at the identity provider and
	 * the gateway answers as to a redeem; NULL: the code is redeemed. */
	int (*login)(struct cl_api *api, const char *name, volatile sig_atomic_t *stop,
	             struct cl_redeem_reply *reply, struct cl_err *err);
	const char *name;        /* --name; NULL: this host's name */
	const char *export_path; /* --export; NULL: a tunnel on this machine */
	bool qr;                 /* --qr: the exported config as a QR code too */
	bool full_tunnel;        /* --full-tunnel: everything through the gateway */
	bool kill_switch;        /* --kill-switch */
	const char *config_dir;  /* where IFNAME.conf is saved */
	struct cl_tunnel_opts tun;
	int api_timeout_s;           /* of each request to the server */
	int handshake_timeout_s;     /* --timeout */
	volatile sig_atomic_t *stop; /* the user's interrupt, or NULL */
};

/* The public key's registration with the server: what it needs, and
 * whether it is done (until then the saved config is worthless). */
struct cl_registration {
	struct cl_api *api;
	const struct cl_redeem_reply *reply; /* device id, address, register token */
	uint8_t public_key[CL_KEY_LEN];
	bool done;
};

/* Everything that can be checked without the server, before the code is
 * spent, so a local problem never costs the user their code: the export's
 * folder is writable; or the interface is not enrolled yet, the folders
 * exist and the tunnel can be made (net->check). */
int cl_enroll_preflight(const struct cl_enroll_opts *o, const struct cl_net *net,
                        struct cl_err *err);

/* A new WireGuard key pair. */
int cl_enroll_keys(uint8_t private_key[CL_KEY_LEN], uint8_t public_key[CL_KEY_LEN],
                   struct cl_err *err);

/* The device's name the server is told: `name`, else this host's name
 * (written into host), else "device". */
const char *cl_enroll_device_name(const char *name, char *host, size_t size);

/* POST /api/v1/redeem {code, name} (name NULL: this host's name) and the
 * reply decoded and checked. */
int cl_enroll_redeem(struct cl_api *api, const char *code, const char *name,
                     struct cl_redeem_reply *reply, struct cl_err *err);

/* The same with another proof than a code: POST path {member: proof,
 * name} (`what` names the step in errors), answered as a redeem is (the
 * OIDC login's ID token to /api/v1/oidc/enroll). */
int cl_enroll_redeem_with(struct cl_api *api, const char *what, const char *path,
                          const char *member, const char *proof, const char *name,
                          struct cl_redeem_reply *reply, struct cl_err *err);

/* POST /api/v1/register: the public key for the redeemed device. */
int cl_enroll_register(struct cl_registration *reg, struct cl_err *err);

/* Saves p as CONFIG_DIR/IFNAME.conf with the trust of the enrolment, for
 * every later call: the pin (canonical) in p, and the trust bundle
 * CONFIG_DIR/IFNAME.ca.pem named in p: the certificates of `anchor` (the
 * file the redeem was verified with, cl_api_anchor; "" for the system's
 * store: no bundle) and the CAs of api_cas (the reply's, PEM, may be "").
 * On failure nothing is left. */
int cl_enroll_save(const struct cl_enroll_opts *o, struct cl_profile *p, const char *anchor,
                   const char *api_cas, struct cl_err *err);

/* Removes what cl_enroll_save wrote for p. */
void cl_enroll_forget(const struct cl_enroll_opts *o, const struct cl_profile *p);

/* --export: writes p as a plain wg-quick file, registers the key (or
 * removes the file again), prints the QR code when asked and where the
 * file is. */
int cl_enroll_export(const struct cl_enroll_opts *o, const struct cl_profile *p,
                     struct cl_registration *reg, struct cl_err *err);

/* Brings the tunnel of p up; when enrolling (reg not NULL) registers the
 * key while it is up, so the server knows it before the first handshake;
 * waits for that handshake, prints the tunnel's line and sets the resolver.
 * On failure the tunnel is removed again. Also a reconnect's step. */
int cl_connect(const struct cl_net *net, const struct cl_tunnel_opts *tun,
               const struct cl_profile *p, int timeout_s, volatile sig_atomic_t *stop,
               struct cl_registration *reg, struct cl_err *err);

/* The whole enrolment, the steps above in order. Returns 0 with the saved
 * (or exported) config in *p, or -1 with err set; a device whose key the
 * server never got keeps no config. The caller wipes *p. */
int cl_enroll_run(const struct cl_enroll_opts *o, const struct cl_net *net, struct cl_profile *p,
                  struct cl_err *err);

#endif
