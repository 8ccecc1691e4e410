/* Following the networks of the device's role: `meshgate sync` asks the
 * gateway, through the tunnel, which networks this device routes now
 * (GET /api/v1/device/config, the device known by its tunnel address),
 * moves the running tunnel to them in place (the peer's allowed IPs, the
 * routes) and rewrites the saved config, so a later `meshgate up` uses
 * them too. `meshgate watch` does it every few seconds until stopped. */
#ifndef MESHGATE_CLIENT_FOLLOW_H
#define MESHGATE_CLIENT_FOLLOW_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "config_file.h"
#include "err.h"
#include "tunnel.h"

#define CL_FOLLOW_TIMEOUT_S 10 /* a sync's request: through the tunnel, to the gateway */

struct cl_follow_opts {
	struct cl_tunnel_opts tun;
	const char *config_path; /* CONFIG_DIR/IFNAME.conf */
	int timeout_s;           /* of the request */
	volatile sig_atomic_t *stop;
};

struct cl_follow_result {
	char device_id[CL_DEVICE_ID_MAX];
	char role[CL_ROLE_MAX];
	struct cl_prefix added[CL_MAX_ALLOWED_IPS], removed[CL_MAX_ALLOWED_IPS];
	size_t n_added, n_removed;
	struct cl_prefix now[CL_MAX_ALLOWED_IPS]; /* the networks after the sync */
	size_t n_now;
	bool dns_changed;
	size_t cas_added; /* CAs of the gateway's nodes new in the trust bundle */
	bool changed; /* anything written: networks, DNS, the API's address, the bundle's name */
	struct cl_nodes nodes; /* the answer's, with what is not saved (a key switch) */
	long long received_ms; /* monotonic: when the answer came */
	bool rotate;           /* the gateway asks for a new key (the agent's rotate.h) */
};

/* One sync. Returns 0 (with what changed in *res) or -1 with err set:
 * CL_EXIT_NOT_FOUND when the device is not enrolled or its tunnel is not
 * up, CL_EXIT_TLS / CL_EXIT_SERVER for the gateway, CL_EXIT_TUNNEL when
 * the tunnel could not follow (the saved config is then left as it was, so
 * the next sync tries again). */
int cl_follow_sync(const struct cl_follow_opts *o, struct cl_follow_result *res,
                   struct cl_err *err);

/* What a sync changed, one line each ("+ 10.20.0.0/24", "- 10.30.0.0/24"),
 * after a line naming the interface; with always, also when nothing did. */
void cl_follow_print(FILE *out, const char *ifname, const struct cl_follow_result *res,
                     bool always);

/* Syncs every interval_s seconds until *stop; a failure is reported once
 * (and its end too) and the next round tries again. Returns the exit code:
 * 0 when stopped, CL_EXIT_NOT_FOUND when the device is (or becomes) not
 * enrolled. */
int cl_follow_watch(const struct cl_follow_opts *o, int interval_s);

/* The same gateway nodes and probe (their "active" aside). */
bool cl_nodes_same(const struct cl_nodes *a, const struct cl_nodes *b);

/* Where the saved config's CA file is: a name without '/' lives in the
 * config's own folder. */
void cl_follow_ca_path(const char *config_path, const char *ca_file, char *out, size_t size);

#endif
