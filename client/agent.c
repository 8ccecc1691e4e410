#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "clock.h"
#include "follow.h"
#include "killswitch.h"
#include "pmtu.h"
#include "probe.h"
#include "rotate_gw.h"
#include "rotate.h"
#include "wan.h"
#include "wg.h"

#define PROBE_MS 100
/* Missed answers in a row before the node counts as gone; a node just
 * switched to gets a few more, for its handshake. */
#define MISS_LIMIT        5
#define MISS_LIMIT_SWITCH 8
/* A node left for not answering is not taken back on another node's word
 * (a stale "active") for this long. */
#define FAILED_HOLD_MS 5000
#define SYNC_TIMEOUT_S 2
#define SYNC_RETRY_MS  1000
#define STATUS_MS      1000
/* undoing WireGuard's roam away from a best uplink just moved to */
#define SETTLE_MS    10000
#define SETTLE_TRIES 3
#define NONCES       8
/* a key rotation that failed is tried again after this long */
#define ROTATE_RETRY_MS 10000
/* The node's peer set anew while the node is silent (renew_silent_peer):
 * at most this often, and this many times a silence. */
#define SILENT_RENEW_MS 1000
#define SILENT_RENEWS   30

struct candidate {
	long long last_answer; /* unix ms, 0 never */
	long rtt_ms;
	int misses;
	long long failed_at; /* monotonic ms it was left for silence, 0 never */
};

struct agent {
	const struct cl_agent_opts *o;
	struct cl_profile p;
	int fd;
	int current; /* the gateway in use (index in p.nodes), -1 unknown */
	struct candidate cand[CL_MAX_GATEWAYS];
	uint64_t nonces[NONCES];
	long long sent_at[NONCES];
	unsigned next_nonce;
	bool answered;         /* since the last probe */
	bool silent;           /* the last probe went unanswered */
	long long answered_at; /* unix ms of the last answer, 0 none */
	int misses, miss_limit;
	unsigned endpoints_tried; /* the node's uplinks tried since its last answer (wan.h) */
	char node[CL_NODE_NAME_MAX], active[CL_NODE_NAME_MAX];
	uint64_t epoch, wanted_epoch;
	long long next_sync;
	struct {
		long long at;
		char from[CL_NODE_NAME_MAX], to[CL_NODE_NAME_MAX], why[256];
	} last_switch;
	char *written; /* the status file's text as last written */
	long long status_at;
	struct cl_access access; /* why the tunnel is silent, when access ended */
	struct cl_pmtu *pmtu;    /* path MTU discovery (pmtu.h) */
	/* after a move to the node's best uplink: until when, and how many
	 * more times, a roam back is undone (settle_on_uplink) */
	long long settle_until;
	int settle_left;
	struct cl_rotate_gw rotate_gw; /* the node's key switch (rotate_gw.h) */
	long long key_switched_at;     /* unix ms the peer was replaced by the node's new key */
	/* the gateway asks for a new key (the device config's "rotate"), and
	 * when to try (again) */
	bool rotate_wanted;
	long long next_rotation;
	char rotate_error[sizeof(((struct cl_err *)0)->msg)]; /* the last one, said once */
	/* the node's peer set anew in this silence: how often, the next look
	 * (0: the silence just began), the bytes received at the last look */
	int silent_renews;
	long long next_silent_renew;
	uint64_t silent_rx_bytes;
};

static void agent_path(const struct cl_tunnel_opts *tun, const char *ext, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.agent.%s", tun->state_dir, tun->ifname, ext);
}

bool cl_agent_wanted(const struct cl_profile *p)
{
	return p->nodes.has_probe;
}

/* ---- the gateways ---- */

static int gateway_index(const struct cl_profile *p, const char *name)
{
	for (size_t i = 0; i < p->nodes.n_gateways; i++)
		if (!strcmp(p->nodes.gateways[i].name, name))
			return (int)i;
	return -1;
}

static int gateway_of_peer(const struct cl_profile *p)
{
	for (size_t i = 0; i < p->nodes.n_gateways; i++)
		if (!memcmp(p->nodes.gateways[i].public_key, p->server_public_key, CL_KEY_LEN))
			return (int)i;
	return -1;
}

static const char *current_name(const struct agent *a)
{
	return a->current >= 0 ? a->p.nodes.gateways[a->current].name : "";
}

/* ---- status ---- */

static json_t *status_json(const struct agent *a)
{
	char key[WG_KEY_B64_LEN], endpoint[CL_ENDPOINT_STRLEN];
	json_t *cands = json_array();
	for (size_t i = 0; i < a->p.nodes.n_gateways; i++) {
		const struct cl_gateway *g = &a->p.nodes.gateways[i];
		const struct candidate *c = &a->cand[i];
		wg_key_to_base64(key, g->public_key);
		cl_endpoint_format(&g->endpoint, endpoint, sizeof(endpoint));
		json_t *probe = json_pack(
		    "{s:b, s:i, s:o}", "ok", c->last_answer && !c->misses, "misses", c->misses,
		    "last_answer", c->last_answer ? json_integer(c->last_answer) : json_null());
		if (c->last_answer)
			json_object_set_new(probe, "rtt_ms", json_integer(c->rtt_ms));
		json_array_append_new(cands,
		                      json_pack("{s:s, s:s, s:s, s:b, s:b, s:o}", "name", g->name,
		                                "endpoint", endpoint, "public_key", key, "active",
		                                !strcmp(g->name, a->active), "current",
		                                (int)i == a->current, "probe", probe));
	}
	cl_endpoint_format(&a->p.endpoint, endpoint, sizeof(endpoint));
	json_t *last =
	    a->last_switch.at
	        ? json_pack("{s:I, s:s, s:s, s:s}", "at", (json_int_t)a->last_switch.at, "from",
	                    a->last_switch.from, "to", a->last_switch.to, "why", a->last_switch.why)
	        : json_null();
	return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "pid", (int)getpid(),
	                 "gateway", a->current >= 0 ? current_name(a) : endpoint, "node", a->node,
	                 "active", a->active, "candidates", cands, "last_switch", last, "access",
	                 cl_access_json(&a->access), "path_mtu", cl_pmtu_status(a->pmtu));
}

static void write_status(struct agent *a)
{
	char path[4096];
	struct cl_err err = {0};
	json_t *st = status_json(a);
	char *text = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	a->status_at = cl_mono_ms();
	if (!text || (a->written && !strcmp(text, a->written))) {
		free(text);
		return;
	}
	agent_path(&a->o->tun, "json", path, sizeof(path));
	if (cl_write_private_file(path, text, &err))
		fprintf(stderr, "meshgate: %s\n", err.msg);
	free(a->written);
	a->written = text;
}

json_t *cl_agent_status(const struct cl_tunnel_opts *tun)
{
	char path[4096];
	if (!cl_agent_running(tun))
		return NULL;
	agent_path(tun, "json", path, sizeof(path));
	return json_load_file(path, 0, NULL);
}

/* ---- switching ---- */

/* To node `to` at `endpoint` (NULL: its best one). */
static void switch_to(struct agent *a, int to, const struct cl_endpoint *endpoint, const char *why)
{
	struct cl_err err = {0};
	const struct cl_gateway *g = &a->p.nodes.gateways[to];
	char from[CL_NODE_NAME_MAX];
	snprintf(from, sizeof(from), "%s", current_name(a));
	if (to != a->current)
		a->endpoints_tried = 0;
	memcpy(a->p.server_public_key, g->public_key, CL_KEY_LEN);
	a->p.endpoint = endpoint ? *endpoint : g->endpoint;
	if (cl_tunnel_switch(&a->o->tun, &a->p, &err)) {
		fprintf(stderr, "meshgate: cannot switch to %s: %s\n", g->name, err.msg);
		return;
	}
	a->current = to;
	a->misses = 0;
	a->miss_limit = MISS_LIMIT_SWITCH;
	a->cand[to].misses = 0;
	a->last_switch.at = cl_unix_ms();
	snprintf(a->last_switch.from, sizeof(a->last_switch.from), "%s", from);
	snprintf(a->last_switch.to, sizeof(a->last_switch.to), "%s", g->name);
	snprintf(a->last_switch.why, sizeof(a->last_switch.why), "%s", why);
	printf("meshgate: %s: switched from %s to %s: %s\n", a->o->tun.ifname, *from ? from : "?",
	       g->name, why);
	fflush(stdout);
	cl_pmtu_target(a->pmtu, &a->p.endpoint, a->p.nodes.pmtu_port, "switched node");
	/* the saved config names the node in use: sync and a later up use it */
	if (cl_profile_save(a->o->config_path, &a->p, &err))
		fprintf(stderr, "meshgate: %s\n", err.msg);
	write_status(a);
}

/* The node to try when ours is silent: the active one, unless it is ours
 * or was left for silence lately; else the next in the list. */
static int next_candidate(const struct agent *a)
{
	int n = (int)a->p.nodes.n_gateways, active = gateway_index(&a->p, a->active);
	long long now = cl_mono_ms();
	if (active >= 0 && active != a->current &&
	    (!a->cand[active].failed_at || now - a->cand[active].failed_at > FAILED_HOLD_MS))
		return active;
	return a->current < 0 ? 0 : (a->current + 1) % n;
}

/* The latest handshake with the tunnel's peer, in unix ms (0: none), and
 * the bytes received from it; -1 when the interface could not be read. */
static long long peer_heard(const struct agent *a, uint64_t *rx_bytes)
{
	struct timespec at;
	struct cl_err err = {0};
	if (cl_tunnel_peer_heard(&a->o->tun, a->p.server_public_key, &at, rx_bytes, &err))
		return -1;
	return at.tv_sec * 1000LL + at.tv_nsec / 1000000;
}

/* Silent, and no other node or uplink to try. WireGuard goes on sending on
 * its session, which the node may no longer have (the device was disabled
 * and enabled again: its peer there is a new one), and would start a new
 * handshake only after 15 s without an answer; a peer whose handshakes
 * went unanswered retries only every 5 s. The peer set anew (one set)
 * handshakes at its next packet, i.e. the next probe. Only when nothing
 * at all came from the peer for SILENT_RENEW_MS (while only the probes'
 * answers are missing, e.g. during a restart of meshgated, the session
 * works: setting the peer anew would drop the packets in flight) and it
 * has had no handshake since the node's last answer; every
 * SILENT_RENEW_MS, SILENT_RENEWS times a silence: after that WireGuard's
 * own 5 s retries go on (the renewed peer has no session to send on). */
static void renew_silent_peer(struct agent *a)
{
	struct cl_err err = {0};
	long long now = cl_mono_ms();
	uint64_t rx_bytes;
	if (a->silent_renews >= SILENT_RENEWS || now < a->next_silent_renew)
		return;
	long long handshake = peer_heard(a, &rx_bytes);
	if (handshake < 0)
		return;
	bool heard = !a->next_silent_renew || rx_bytes != a->silent_rx_bytes ||
	             (handshake && handshake > a->answered_at);
	a->silent_rx_bytes = rx_bytes;
	a->next_silent_renew = now + SILENT_RENEW_MS;
	if (heard)
		return;
	if (cl_tunnel_renew_peer(&a->o->tun, &a->p, &err)) {
		fprintf(stderr, "meshgate: %s: cannot set the node's peer anew: %s\n",
		        a->o->tun.ifname, err.msg);
		return;
	}
	a->silent_rx_bytes = 0; /* the new peer's */
	if (!a->silent_renews++)
		printf("meshgate: %s: nothing from %s for %d ms: its peer set anew (every %d ms, "
		       "up to %d times)\n",
		       a->o->tun.ifname, *current_name(a) ? current_name(a) : "the node",
		       SILENT_RENEW_MS, SILENT_RENEW_MS, SILENT_RENEWS);
	fflush(stdout);
}

static void on_silence(struct agent *a)
{
	char why[256], endpoint[CL_ENDPOINT_STRLEN];
	if (a->current >= 0) {
		a->cand[a->current].misses = a->misses;
		a->cand[a->current].failed_at = cl_mono_ms();
	}
	/* access ended: no node will answer; hold still */
	if (cl_access_on_silence(&a->access, &a->p, a->o->config_path))
		return;
	snprintf(why, sizeof(why), "no answer from %s for %d probes",
	         *current_name(a) ? current_name(a) : "the node", a->misses);
	/* the same node through another of its uplinks first (wan.h) */
	const struct cl_endpoint *uplink =
	    a->current >= 0 ? cl_wan_fallback(&a->p.nodes.gateways[a->current], &a->p.endpoint,
	                                      &a->endpoints_tried, a->p.nodes.n_gateways > 1)
	                    : NULL;
	if (uplink) {
		cl_endpoint_format(uplink, endpoint, sizeof(endpoint));
		snprintf(why + strlen(why), sizeof(why) - strlen(why), ": its uplink %s", endpoint);
		switch_to(a, a->current, uplink, why);
		return;
	}
	if (a->p.nodes.n_gateways < 2) {
		renew_silent_peer(a); /* nowhere else to go */
		return;
	}
	switch_to(a, next_candidate(a), NULL, why);
}

/* ---- probes ---- */

static void send_probe(struct agent *a)
{
	uint8_t req[PROBE_REQUEST_LEN];
	uint64_t nonce;
	randombytes_buf(&nonce, sizeof(nonce));
	unsigned slot = a->next_nonce++ % NONCES;
	a->nonces[slot] = nonce;
	a->sent_at[slot] = cl_mono_ms();
	probe_request_encode_mtu(nonce, cl_pmtu_told(a->pmtu), req);
	send(a->fd, req, sizeof(req), MSG_DONTWAIT);
}

static void on_answer(struct agent *a, const struct probe_answer *ans, long rtt)
{
	char why[300];
	a->answered = true;
	a->answered_at = cl_unix_ms();
	if (a->silent_renews)
		printf("meshgate: %s: %s answers again\n", a->o->tun.ifname, ans->node);
	a->silent_renews = 0;
	a->next_silent_renew = 0;
	a->misses = 0;
	a->endpoints_tried = 0;
	a->miss_limit = MISS_LIMIT;
	cl_access_on_answer(&a->access);
	cl_rotate_gw_answered(&a->rotate_gw, cl_mono_ms());
	if (a->current < 0)
		a->current = gateway_index(&a->p, ans->node);
	if (a->current >= 0) {
		struct candidate *c = &a->cand[a->current];
		c->last_answer = cl_unix_ms();
		c->rtt_ms = rtt;
		c->misses = 0;
		c->failed_at = 0;
	}
	snprintf(a->node, sizeof(a->node), "%s", ans->node);
	snprintf(a->active, sizeof(a->active), "%s", ans->active);
	if (ans->epoch != a->epoch && ans->epoch != a->wanted_epoch) {
		a->wanted_epoch = ans->epoch;
		a->next_sync = 0; /* now */
	}
	int active = gateway_index(&a->p, ans->active);
	if (active >= 0 && active != a->current &&
	    (!a->cand[active].failed_at ||
	     cl_mono_ms() - a->cand[active].failed_at > FAILED_HOLD_MS)) {
		snprintf(why, sizeof(why), "%s says the active node is %s", ans->node, ans->active);
		switch_to(a, active, NULL, why);
	}
}

static void read_answers(struct agent *a)
{
	uint8_t buf[PROBE_ANSWER_MAX + 1];
	struct probe_answer ans;
	ssize_t n;
	while ((n = recv(a->fd, buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
		if (probe_answer_decode(buf, (size_t)n, &ans))
			continue; /* not an answer: changes nothing */
		for (int i = 0; i < NONCES; i++)
			if (a->nonces[i] == ans.nonce && a->sent_at[i]) {
				on_answer(a, &ans, (long)(cl_mono_ms() - a->sent_at[i]));
				a->sent_at[i] = 0; /* one answer per probe */
				break;
			}
	}
}

/* ---- the config ---- */

static int reload_profile(struct agent *a)
{
	struct cl_err err = {0};
	struct cl_profile *p = calloc(1, sizeof(*p));
	if (!p || cl_profile_load(a->o->config_path, p, &err)) {
		free(p);
		return -1;
	}
	sodium_memzero(&a->p, sizeof(a->p));
	a->p = *p;
	sodium_memzero(p, sizeof(*p));
	free(p);
	a->current = gateway_of_peer(&a->p);
	cl_killswitch_follow(&a->o->tun, &a->p);
	return 0;
}

/* The node's best uplink changed on the gateway's side: go there. */
static void follow_best_uplink(struct agent *a, const struct cl_gateway *before)
{
	char why[300], endpoint[CL_ENDPOINT_STRLEN];
	if (!before || a->current < 0 || strcmp(before->name, current_name(a)))
		return;
	const struct cl_endpoint *best =
	    cl_wan_follow(before, &a->p.nodes.gateways[a->current], &a->p.endpoint);
	if (!best)
		return;
	cl_endpoint_format(best, endpoint, sizeof(endpoint));
	snprintf(why, sizeof(why), "%s's best uplink is now %s", current_name(a), endpoint);
	switch_to(a, a->current, best, why);
	a->settle_until = cl_mono_ms() + SETTLE_MS;
	a->settle_left = SETTLE_TRIES;
}

/* WireGuard follows the gateway's packets to the address they come from:
 * one still on its way from the uplink just left takes the session back
 * there. For a while after a move to the best uplink, the move is made
 * again when that happened. */
static void settle_on_uplink(struct agent *a, long long now)
{
	char why[300], endpoint[CL_ENDPOINT_STRLEN];
	if (now > a->settle_until || a->settle_left <= 0 || a->current < 0 ||
	    cl_tunnel_endpoint_kept(&a->o->tun, &a->p) != 0)
		return;
	a->settle_left--;
	struct cl_endpoint best = a->p.endpoint;
	cl_endpoint_format(&best, endpoint, sizeof(endpoint));
	snprintf(why, sizeof(why), "WireGuard roamed away from %s's best uplink %s",
	         current_name(a), endpoint);
	switch_to(a, a->current, &best, why);
}

/* The node in use switches to its next key: the peer is replaced then
 * (rotate_gw.h), or at once when the config already names the new key
 * (read after the switch). */
static void follow_gateway_key(struct agent *a, const struct cl_gateway *before,
                               const struct cl_follow_result *res)
{
	if (!before)
		return;
	int node = gateway_index(&a->p, before->name);
	if (cl_rotate_gw_plan(&a->rotate_gw, &res->nodes, before->name, a->p.server_public_key,
	                      res->received_ms))
		return;
	if (node >= 0 && a->current < 0 &&
	    memcmp(a->p.nodes.gateways[node].public_key, a->p.server_public_key, CL_KEY_LEN))
		switch_to(a, node, &a->p.endpoint, "the node's key changed");
}

/* A probe tick around the node's planned key switch (rotate_gw.h). */
static void look_for_switch(struct agent *a)
{
	uint64_t rx_bytes;
	bool read = peer_heard(a, &rx_bytes) >= 0;
	cl_rotate_gw_look(&a->rotate_gw, a->silent, read ? &rx_bytes : NULL);
}

/* The node's key switch is due: its answers stopped after its switch
 * time, or the wait for that is over. */
static void switch_gateway_key(struct agent *a)
{
	int node = gateway_index(&a->p, a->rotate_gw.node);
	if (node < 0)
		return; /* the node is gone from the config meanwhile */
	struct cl_err err = {0};
	char why[160];
	memcpy(a->p.nodes.gateways[node].public_key, a->rotate_gw.key, CL_KEY_LEN);
	snprintf(why, sizeof(why), "the node switched to its next key (%s %lld ms after its time)",
	         a->rotate_gw.quiet ? "it stopped sending" : "no stop of its sending seen",
	         cl_mono_ms() - (a->rotate_gw.at - CL_ROTATE_GW_MARGIN_MS));
	/* current < 0: a config read meanwhile names the new key already */
	if (node == a->current || a->current < 0) {
		a->key_switched_at = cl_unix_ms(); /* the handshake may come within the switch */
		switch_to(a, node, &a->p.endpoint, why);
	} else if (cl_profile_save(a->o->config_path, &a->p, &err))
		fprintf(stderr, "meshgate: %s\n", err.msg);
}

/* A while after the switch: no handshake under the node's new key yet
 * (the node switched later than our margin and dropped our first
 * handshake): its peer set anew, which handshakes at once, instead of
 * WireGuard's retry 5 s later. The peer replaced at the switch is a new
 * one: any handshake it has is under the new key. */
static void check_switched_peer(struct agent *a, long long now)
{
	struct cl_err err = {0};
	bool ours = a->current >= 0 && !strcmp(current_name(a), a->rotate_gw.node) &&
	            !memcmp(a->p.server_public_key, a->rotate_gw.key, CL_KEY_LEN);
	uint64_t rx_bytes;
	long long handshake = ours ? peer_heard(a, &rx_bytes) : 1;
	if (ours && handshake > 0)
		printf("meshgate: %s: handshake under %s's new key %lld ms after the switch\n",
		       a->o->tun.ifname, a->rotate_gw.node, handshake - a->key_switched_at);
	if (!cl_rotate_gw_renew(&a->rotate_gw, handshake != 0, now)) {
		fflush(stdout);
		return;
	}
	if (cl_tunnel_renew_peer(&a->o->tun, &a->p, &err))
		fprintf(stderr, "meshgate: %s: cannot set %s's peer anew: %s\n", a->o->tun.ifname,
		        a->rotate_gw.node, err.msg);
	else
		printf("meshgate: %s: no handshake under %s's new key yet: its peer set anew "
		       "(%d more tries)\n",
		       a->o->tun.ifname, a->rotate_gw.node, a->rotate_gw.renews_left);
	fflush(stdout);
	fflush(stderr);
}

static void sync_config(struct agent *a)
{
	struct cl_follow_opts fo = {a->o->tun, a->o->config_path, SYNC_TIMEOUT_S, a->o->stop};
	struct cl_follow_result *res = calloc(1, sizeof(*res));
	struct cl_err err = {0};
	struct cl_gateway before;
	int node = a->current;
	if (!res)
		return;
	if (node >= 0)
		before = a->p.nodes.gateways[node];
	if (cl_follow_sync(&fo, res, &err)) {
		fprintf(stderr, "meshgate: %s: the config epoch changed, but: %s (trying again)\n",
		        a->o->tun.ifname, err.msg);
		a->next_sync = cl_mono_ms() + SYNC_RETRY_MS;
	} else {
		a->epoch = a->wanted_epoch;
		a->next_sync = -1;
		if (res->rotate) /* wanted until done; `meshgate rotate-key` asks too */
			a->rotate_wanted = true;
		cl_follow_print(stdout, a->o->tun.ifname, res, false);
		reload_profile(a);
		follow_gateway_key(a, node >= 0 ? &before : NULL, res);
		follow_best_uplink(a, node >= 0 ? &before : NULL);
		cl_pmtu_target(a->pmtu, &a->p.endpoint, a->p.nodes.pmtu_port, "new config");
	}
	fflush(stdout);
	fflush(stderr);
	free(res);
}

/* ---- the device's key ---- */

/* `meshgate rotate-key` asks the running agent with SIGUSR1 (the agent
 * owns the config and the tunnel while it runs). */
static volatile sig_atomic_t rotate_asked;

static void on_rotate_signal(int sig)
{
	(void)sig;
	rotate_asked = 1;
}

/* A rotation of the device's key (rotate.h), asked for by the gateway or
 * left under way by a crash (a next key in the config). It blocks the loop
 * for its few requests: no probe is sent and no silence counted meanwhile,
 * so the switch never looks like a dead node. */
static void rotate_key(struct agent *a)
{
	struct cl_rotate_opts ro = {a->o->tun, a->o->config_path, a->o->stop};
	struct cl_err err = {0};
	long waited_ms = -1;
	if (cl_rotate_key(&ro, &waited_ms, &err)) {
		if (strcmp(err.msg, a->rotate_error)) /* once, not every try */
			fprintf(stderr,
			        "meshgate: %s: key rotation: %s (trying again every %d s)\n",
			        a->o->tun.ifname, err.msg, ROTATE_RETRY_MS / 1000);
		snprintf(a->rotate_error, sizeof(a->rotate_error), "%s", err.msg);
		a->next_rotation = cl_mono_ms() + ROTATE_RETRY_MS;
	} else {
		a->rotate_error[0] = '\0';
		a->rotate_wanted = false;
		printf("meshgate: %s: rotated the device's key (handshake under the new key %s%ld "
		       "ms after the switch)\n",
		       a->o->tun.ifname, waited_ms < 0 ? "not seen, " : "",
		       waited_ms < 0 ? 0 : waited_ms);
	}
	fflush(stdout);
	fflush(stderr);
	reload_profile(a); /* the new key: a later switch of node saves it */
	a->answered = true;
	a->misses = 0;
	a->miss_limit = MISS_LIMIT_SWITCH;
}

/* ---- the loop ---- */

static int open_probe_socket(const struct agent *a, struct cl_err *err)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(a->p.nodes.probe.port)};
	const char *ifname = a->o->tun.ifname;
	if (inet_pton(AF_INET, a->p.nodes.probe.host, &to.sin_addr) != 1)
		return cl_fail(err, CL_EXIT_FAILURE, "the probe address %s is not IPv4",
		               a->p.nodes.probe.host);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return cl_fail(err, CL_EXIT_FAILURE, "socket: %s", strerror(errno));
	/* through the tunnel, whatever the routes say */
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) ||
	    connect(fd, (struct sockaddr *)&to, sizeof(to))) {
		cl_fail(err, CL_EXIT_FAILURE, "cannot probe %s through %s: %s",
		        a->p.nodes.probe.host, ifname, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Holds IFNAME.agent.pid locked for the agent's life: one per interface. */
static int take_pid_file(const struct cl_tunnel_opts *tun, struct cl_err *err)
{
	char path[4096], text[32];
	agent_path(tun, "pid", path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return cl_fail(err, CL_EXIT_FAILURE, "cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return cl_fail(err, CL_EXIT_FAILURE, "an agent runs for %s already (%s)",
		               tun->ifname, path);
	}
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, text, (size_t)n, 0) != n) {
		close(fd);
		return cl_fail(err, CL_EXIT_FAILURE, "cannot write %s", path);
	}
	return fd;
}

static void agent_loop(struct agent *a)
{
	long long next_probe = 0, next_check = cl_mono_ms() + 1000;
	a->next_sync = 0; /* the config once at start: it may have changed meanwhile */
	while (!*a->o->stop) {
		long long now = cl_mono_ms();
		if (now >= next_probe) {
			a->silent = !a->answered && next_probe;
			if (a->silent && ++a->misses >= a->miss_limit &&
			    !cl_rotate_gw_holds(&a->rotate_gw, now))
				on_silence(a);
			if (a->rotate_gw.planned && now >= a->rotate_gw.at - PROBE_MS)
				look_for_switch(a);
			a->answered = false;
			send_probe(a);
			next_probe = now + (a->access.expired ? CL_ACCESS_PROBE_MS : PROBE_MS);
		}
		if (cl_rotate_gw_due(&a->rotate_gw, now, a->rotate_gw.quiet))
			switch_gateway_key(a);
		if (cl_rotate_gw_check_due(&a->rotate_gw, now))
			check_switched_peer(a, now);
		if (a->next_sync >= 0 && now >= a->next_sync && a->epoch != a->wanted_epoch &&
		    a->wanted_epoch && !cl_pmtu_first_search(a->pmtu))
			sync_config(a);
		if (rotate_asked) {
			rotate_asked = 0;
			a->rotate_wanted = true;
			a->next_rotation = 0;
		}
		if ((a->rotate_wanted || a->p.has_next_key) && now >= a->next_rotation &&
		    !a->access.expired)
			rotate_key(a);
		if (now >= next_check) {
			next_check = now + 1000;
			if (!cl_tunnel_is_up(&a->o->tun) || access(a->o->config_path, F_OK)) {
				printf(
				    "meshgate: %s is down or no longer enrolled: the agent stops\n",
				    a->o->tun.ifname);
				return;
			}
			settle_on_uplink(a, now);
		}
		cl_pmtu_tick(a->pmtu, a->misses == 0);
		if (now - a->status_at >= STATUS_MS)
			write_status(a);
		struct pollfd pfd[2] = {{.fd = a->fd, .events = POLLIN},
		                        {.fd = cl_pmtu_fd(a->pmtu), .events = POLLIN}};
		long long wait = next_probe - cl_mono_ms();
		if (poll(pfd, 2, wait > 0 ? (int)wait : 0) > 0) {
			if (pfd[0].revents)
				read_answers(a);
			if (pfd[1].revents)
				cl_pmtu_read(a->pmtu);
		}
	}
}

int cl_agent_run(const struct cl_agent_opts *o)
{
	struct cl_err err = {0};
	char path[4096];
	struct agent *a = calloc(1, sizeof(*a));
	if (!a)
		return CL_EXIT_FAILURE;
	a->o = o;
	a->miss_limit = MISS_LIMIT;
	/* before the pid file names this process: a rotate-key never kills it */
	struct sigaction sa = {.sa_handler = on_rotate_signal};
	sigaction(SIGUSR1, &sa, NULL);
	a->next_sync = -1;
	int pid_fd = -1;
	if (reload_profile(a)) {
		cl_fail(&err, CL_EXIT_NOT_FOUND, "%s is not enrolled (no %s)", o->tun.ifname,
		        o->config_path);
	} else if (!a->p.nodes.has_probe) {
		cl_fail(&err, CL_EXIT_SERVER,
		        "the gateway tells no probe address: nothing to follow (meshgate watch "
		        "--interface %s polls instead)",
		        o->tun.ifname);
	} else if ((pid_fd = take_pid_file(&o->tun, &err)) >= 0 &&
	           (a->fd = open_probe_socket(a, &err)) >= 0 &&
	           !(a->pmtu = cl_pmtu_new(&o->tun, o->mtu))) {
		cl_fail(&err, CL_EXIT_FAILURE, "out of memory");
		close(a->fd);
	} else if (pid_fd >= 0 && a->fd >= 0) {
		printf("meshgate: %s: agent %ld follows %zu gateway node%s and the networks "
		       "(probes every %d ms)\n",
		       o->tun.ifname, (long)getpid(), a->p.nodes.n_gateways,
		       a->p.nodes.n_gateways == 1 ? "" : "s", PROBE_MS);
		fflush(stdout);
		cl_pmtu_target(a->pmtu, &a->p.endpoint, a->p.nodes.pmtu_port, "start");
		agent_loop(a);
		cl_access_stop(&a->access);
		close(a->fd);
		agent_path(&o->tun, "json", path, sizeof(path));
		unlink(path);
		agent_path(&o->tun, "pid", path, sizeof(path));
		unlink(path);
		printf("meshgate: %s: the agent stopped\n", o->tun.ifname);
	}
	if (pid_fd >= 0)
		close(pid_fd);
	free(a->written);
	cl_pmtu_free(a->pmtu);
	sodium_memzero(a, sizeof(*a));
	free(a);
	if (!*err.msg)
		return 0;
	fprintf(stderr, "meshgate: %s\n", err.msg);
	return err.exit_code;
}

/* ---- the daemon ---- */

/* Is pid `meshgate agent ...` of this interface? Its command line says. */
static bool is_agent(pid_t pid, const char *ifname)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	bool agent = false, interface = false;
	const char *prev = "";
	for (const char *arg = buf; arg < buf + n; arg += strlen(arg) + 1) {
		if (arg != buf && prev == buf && !strcmp(arg, "agent"))
			agent = true;
		if ((!strcmp(prev, "--interface") || !strcmp(prev, "-i")) && !strcmp(arg, ifname))
			interface = true;
		prev = arg;
	}
	return agent && interface;
}

pid_t cl_agent_running(const struct cl_tunnel_opts *tun)
{
	char path[4096], text[32] = "";
	agent_path(tun, "pid", path, sizeof(path));
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	bool got = fgets(text, sizeof(text), f) != NULL;
	fclose(f);
	pid_t pid = got ? (pid_t)atol(text) : 0;
	return pid > 0 && is_agent(pid, tun->ifname) ? pid : 0;
}

int cl_agent_spawn(char *const argv[], const struct cl_tunnel_opts *tun, pid_t *pid,
                   struct cl_err *err)
{
	char log[4096];
	agent_path(tun, "log", log, sizeof(log));
	fflush(stdout);
	fflush(stderr);
	pid_t child = fork();
	if (child < 0)
		return cl_fail(err, CL_EXIT_FAILURE, "fork: %s", strerror(errno));
	if (child == 0) {
		/* a session of its own, and not its leader: no terminal ever */
		setsid();
		if (fork() != 0)
			_exit(0);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (null < 0 || out < 0)
			_exit(127);
		dup2(null, STDIN_FILENO);
		dup2(out, STDOUT_FILENO);
		dup2(out, STDERR_FILENO);
		if (chdir("/"))
			_exit(127);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	waitpid(child, NULL, 0);
	for (int i = 0; i < 50; i++) {
		if ((*pid = cl_agent_running(tun)))
			return 0;
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
	}
	return cl_fail(err, CL_EXIT_FAILURE, "the agent did not start (see %s)", log);
}

int cl_agent_stop(const struct cl_tunnel_opts *tun, struct cl_err *err)
{
	pid_t pid = cl_agent_running(tun);
	if (!pid)
		return 0;
	if (kill(pid, SIGTERM) && errno != ESRCH)
		return cl_fail(err, CL_EXIT_FAILURE, "cannot stop the agent (pid %ld): %s",
		               (long)pid, strerror(errno));
	for (int i = 0; i < 30 && is_agent(pid, tun->ifname); i++)
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
	if (is_agent(pid, tun->ifname))
		kill(pid, SIGKILL);
	return 0;
}
