/* The HTTPS server: libmicrohttpd with its own thread pool. Each request
 * is checked (route, method, type, size, body) before one bus request is
 * made; the reply, or its error mapped to a status, is the answer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http.h"
#include "panel.h"
#include "session.h"

/* A body announced larger than this is answered 413 at once, unread. */
#define API_DROP_MAX (1u << 20)
/* Any other too large body (a chunked one has no announced size) is read
 * and dropped, never kept, until it ends, so that the client gets its 413
 * rather than a reset (nginx's lingering close does the same); a body
 * still arriving after this long gets the connection closed. */
#define API_DROP_SECONDS 10

/* Connections as the server keeps them apart (conns below). A connection
 * is "reading" from its accept (the TLS handshake included) until its
 * request has arrived whole, and again from the end of its answer until
 * the next request of a keep-alive connection: reading longer than
 * head_timeout_ms is slow, and slow connections are closed. */
struct prefix {
	unsigned char bytes[16]; /* the address, cut to /24 or /64 (v4 in 4 bytes) */
	unsigned count;          /* open connections from it */
	struct prefix *next;
};

struct conn {
	int fd;
	uint64_t reading_since; /* monotonic ms; 0: its request is served */
	int closing;            /* shut down by us: MHD closes it next */
	struct prefix *prefix;
};

#define PREFIX_BUCKETS 1024

struct conns {
	pthread_mutex_t lock;
	struct conn **all; /* open connections, in no order */
	size_t n, cap;
	size_t closing; /* of them, shut down and not yet closed by MHD */
	struct prefix *prefixes[PREFIX_BUCKETS];
};

struct api_server {
	struct api_server_config cfg;
	struct conns conns;
	char *chain_pem, *key_pem, *priorities; /* MHD keeps pointers to these */
	char *vpn_prefix, *vpn_api;
	struct MHD_Daemon *mhd;
	struct MHD_Daemon *mhd_vpn; /* on extra_listen, or NULL */
	char vpn_error[256];
	pthread_mutex_t cas_lock; /* of what devices are told about every node: */
	json_t *api_cas;          /* every node's CA (api_server_set_cas) */
	json_t *gateways;         /* every node's WireGuard side (api_server_set_gateways) */
	char *probe;              /* where the probe answers, "IP:PORT", or NULL */
	unsigned pmtu_port;       /* where size probes are answered (pmtu.h), 0 none */
};

/* One request's state between the calls MHD makes for it. */
struct request {
	enum api_route route;
	char *path; /* of a route whose path carries the device's id, else NULL */
	char *body;
	size_t len;
	int too_large;        /* the body passed max_body: the rest is dropped */
	time_t drop_deadline; /* monotonic seconds: a too large body ends by then */
	int answered;         /* a response is queued already */
};

/* ---- responses ---- */

/* A JSON answer; set_cookie: a Set-Cookie header's value, or NULL. */
static enum MHD_Result respond_cookie(struct MHD_Connection *conn, struct request *r,
                                      unsigned status, json_t *body, const char *allow,
                                      const char *set_cookie)
{
	char *text = json_dumps(body, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;
	char *framed = text ? malloc(len + 2) : NULL;
	json_decref(body);
	if (!framed) {
		free(text);
		return MHD_NO;
	}
	memcpy(framed, text, len);
	framed[len++] = '\n';
	free(text);
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, framed, MHD_RESPMEM_MUST_COPY);
	free(framed);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (status == MHD_HTTP_UNAUTHORIZED) /* only the admin API asks for one */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (set_cookie && *set_cookie)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
	api_panel_secure(resp);
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES && r)
		r->answered = 1;
	return ret;
}

static enum MHD_Result respond(struct MHD_Connection *conn, struct request *r, unsigned status,
                               json_t *body, const char *allow)
{
	return respond_cookie(conn, r, status, body, allow, NULL);
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, struct request *r,
                                     unsigned status, const char *code, const char *message,
                                     const char *allow)
{
	return respond(conn, r, status,
	               json_pack("{s:s, s:s}", "error", code, "message", message ? message : ""),
	               allow);
}

/* ---- the client ---- */

/* The peer's address as preauth should see it: IPv4-mapped IPv6 addresses
 * (from a dual-stack socket) are written as IPv4. */
static void address_text(const struct sockaddr *sa, char *out, size_t len)
{
	snprintf(out, len, "unknown");
	if (sa && sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
		          (socklen_t)len);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)len);
		else
			inet_ntop(AF_INET6, a, out, (socklen_t)len);
	}
}

static void client_ip(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	address_text(info ? info->client_addr : NULL, out, len);
}

/* ---- connections: limits per prefix, a deadline for reading, reclaiming ---- */

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The network a client address belongs to for the per-prefix limit: its
 * /24, or its /64 (IPv4-mapped addresses count as IPv4). 0, or -1 for
 * an address of another family. */
static int prefix_of(const struct sockaddr *sa, unsigned char bytes[16])
{
	memset(bytes, 0, 16);
	if (sa && sa->sa_family == AF_INET) {
		memcpy(bytes, &((const struct sockaddr_in *)sa)->sin_addr, 3);
		return 0;
	}
	if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			memcpy(bytes, &a->s6_addr[12], 3);
		else
			memcpy(bytes + 4, a->s6_addr, 8); /* apart from every IPv4 prefix */
		bytes[15] = 6;
		return 0;
	}
	return -1;
}

static struct prefix **prefix_slot(struct conns *c, const unsigned char bytes[16])
{
	unsigned h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ bytes[i]) * 16777619u;
	struct prefix **p = &c->prefixes[h % PREFIX_BUCKETS];
	while (*p && memcmp((*p)->bytes, bytes, 16))
		p = &(*p)->next;
	return p;
}

/* Shuts a connection down: MHD sees its end on the next turn of its loop
 * and closes it (then on_connection forgets it). The fd stays MHD's until
 * then, so it cannot be another connection's yet. Under c->lock. */
static void reclaim(struct conns *c, struct conn *victim)
{
	victim->closing = 1;
	c->closing++;
	shutdown(victim->fd, SHUT_RDWR);
}

static void close_slow(struct api_server *s, uint64_t now)
{
	struct conns *c = &s->conns;
	for (size_t i = 0; i < c->n; i++) {
		struct conn *k = c->all[i];
		if (!k->closing && k->reading_since &&
		    now - k->reading_since >= s->cfg.head_timeout_ms)
			reclaim(c, k);
	}
}

/* Who gives up its slot for a new connection when all are taken: a
 * reading connection of the network holding the most, the one reading
 * for the longest among those. A client that sends its request at once
 * is never reading for long, and one device is not the largest network:
 * the slots go back to real clients. NULL when every connection is being
 * served (reading nothing). */
static struct conn *slowest(struct conns *c)
{
	struct conn *victim = NULL;
	for (size_t i = 0; i < c->n; i++) {
		struct conn *k = c->all[i];
		if (k->closing || !k->reading_since)
			continue;
		if (!victim || k->prefix->count > victim->prefix->count ||
		    (k->prefix->count == victim->prefix->count &&
		     k->reading_since < victim->reading_since))
			victim = k;
	}
	return victim;
}

/* MHD's accept policy: the per-prefix limit, and a free slot, reclaimed
 * from the slowest when there is none. Also where slow connections are
 * closed between the rounds of the timer (api_server_tick). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct api_server *s = cls;
	struct conns *c = &s->conns;
	unsigned char bytes[16];
	enum MHD_Result ok = MHD_YES;
	(void)addrlen;
	if (prefix_of(addr, bytes))
		return MHD_NO;
	/* devices through their tunnel share the VPN's prefix, and WireGuard
	 * vouches for each: only the limit per address holds for them */
	char ip[INET6_ADDRSTRLEN];
	address_text(addr, ip, sizeof(ip));
	int limited = s->cfg.per_prefix_limit && api_ip_in_prefix(ip, s->vpn_prefix) != 1;
	pthread_mutex_lock(&c->lock);
	close_slow(s, monotonic_ms());
	struct prefix *p = *prefix_slot(c, bytes);
	if (limited && p && p->count >= s->cfg.per_prefix_limit) {
		ok = MHD_NO;
	} else if (c->n - c->closing >= s->cfg.connection_limit) {
		struct conn *victim = slowest(c);
		if (victim)
			reclaim(c, victim);
		else
			ok = MHD_NO;
	}
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static void conn_forget(struct conns *c, struct conn *k)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->all[i] == k) {
			c->all[i] = c->all[--c->n];
			break;
		}
	if (k->closing)
		c->closing--;
	struct prefix **slot = prefix_slot(c, k->prefix->bytes);
	if (--k->prefix->count == 0) {
		*slot = k->prefix->next;
		free(k->prefix);
	}
	free(k);
}

/* A new connection (before its TLS handshake) and its end. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct api_server *s = cls;
	struct conns *c = &s->conns;
	const union MHD_ConnectionInfo *fd_info, *addr_info;
	unsigned char bytes[16];

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (*socket_context) {
			pthread_mutex_lock(&c->lock);
			conn_forget(c, *socket_context);
			pthread_mutex_unlock(&c->lock);
			*socket_context = NULL;
		}
		return;
	}
	fd_info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	addr_info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!fd_info || !addr_info || prefix_of(addr_info->client_addr, bytes))
		return;
	struct conn *k = calloc(1, sizeof(*k));
	pthread_mutex_lock(&c->lock);
	struct prefix **slot = prefix_slot(c, bytes);
	if (k && !*slot && (*slot = calloc(1, sizeof(**slot))))
		memcpy((*slot)->bytes, bytes, 16);
	if (k && *slot && c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct conn **grown = realloc(c->all, cap * sizeof(*grown));
		if (grown) {
			c->all = grown;
			c->cap = cap;
		}
	}
	if (k && *slot && c->n < c->cap) {
		k->fd = fd_info->connect_fd;
		k->reading_since = monotonic_ms();
		k->prefix = *slot;
		k->prefix->count++;
		c->all[c->n++] = k;
		*socket_context = k;
		k = NULL;
	} else if (*slot && !(*slot)->count) {
		/* out of memory: the connection goes unwatched (MHD's idle
		 * timeout still ends it) */
		free(*slot);
		*slot = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	free(k);
}

/* Marks the connection of `conn` reading (since now) or served. */
static void conn_reading(struct api_server *s, struct MHD_Connection *conn, int reading)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = info ? info->socket_context : NULL;
	if (!k)
		return;
	pthread_mutex_lock(&s->conns.lock);
	k->reading_since = reading ? monotonic_ms() : 0;
	pthread_mutex_unlock(&s->conns.lock);
}

void api_server_tick(struct api_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->conns.lock);
	close_slow(s, monotonic_ms());
	pthread_mutex_unlock(&s->conns.lock);
}

/* ---- the routes ---- */

/* The plugins core.status lists as not ready, each as "dns (starting)",
 * and the same joined by ", " into `text`. */
static json_t *not_ready(json_t *status, char *text, size_t len)
{
	json_t *waiting = json_array(), *p;
	size_t i, used = 0;
	text[0] = '\0';
	json_array_foreach(json_object_get(status, "plugins"), i, p)
	{
		const char *state = json_string_value(json_object_get(p, "state"));
		if (json_is_true(json_object_get(p, "ready")) || !state ||
		    !strcmp(state, "failed") || !strcmp(state, "refused"))
			continue;
		char one[128];
		snprintf(one, sizeof(one), "%s (%s)", json_string_value(json_object_get(p, "name")),
		         state);
		json_array_append_new(waiting, json_string(one));
		if (used < len)
			used += (size_t)snprintf(text + used, len - used, "%s%s", used ? ", " : "",
			                         one);
	}
	return waiting;
}

/* Ready (200) once every plugin has reconciled, as core.status says;
 * 503 "not_ready" with the ones still waited for until then. */
static enum MHD_Result health(struct api_server *s, struct MHD_Connection *conn, struct request *r)
{
	json_t *reply;
	mg_request(s->cfg.ctx, "core.status", NULL, s->cfg.request_timeout_ms, &reply);
	const char *code = mg_reply_error(reply);
	enum MHD_Result ret;
	if (code) {
		mg_warn(s->cfg.ctx, "health: the bus does not answer: %s",
		        json_string_value(json_object_get(reply, "message")));
		ret = respond_error(conn, r, strcmp(code, "timeout") ? 503 : 504, code,
		                    json_string_value(json_object_get(reply, "message")), NULL);
	} else if (json_is_false(json_object_get(reply, "ready"))) { /* a core of API 5 on */
		char names[512];
		json_t *waiting = not_ready(reply, names, sizeof(names));
		ret = respond(conn, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		              json_pack("{s:s, s:s+, s:o}", "error", "not_ready", "message",
		                        "not every plugin has reconciled yet: ",
		                        names[0] ? names : "meshgated is starting or stopping",
		                        "waiting", waiting),
		              NULL);
	} else {
		ret = respond(conn, r, MHD_HTTP_OK,
		              json_pack("{s:s, s:s}", "status", "ok", "version", MG_VERSION), NULL);
	}
	json_decref(reply);
	return ret;
}

/* The node's clock, the one wg/server's switch_at_ms is in. */
static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What a device is told about every node: the CAs it trusts, the
 * gateways it may switch to, where it probes its node. */
static void add_nodes(struct api_server *s, json_t *reply)
{
	pthread_mutex_lock(&s->cas_lock);
	if (json_array_size(s->api_cas) && !json_object_get(reply, "api_cas"))
		json_object_set_new(reply, "api_cas", json_deep_copy(s->api_cas));
	if (s->gateways && !json_object_get(reply, "gateways")) {
		json_t *gateways = json_deep_copy(s->gateways);
		api_gateways_switch_in(gateways, wall_ms());
		json_object_set_new(reply, "gateways", gateways);
	}
	if (s->probe && !json_object_get(reply, "probe"))
		json_object_set_new(reply, "probe", json_string(s->probe));
	if (s->pmtu_port && !json_object_get(reply, "pmtu_port"))
		json_object_set_new(reply, "pmtu_port", json_integer(s->pmtu_port));
	pthread_mutex_unlock(&s->cas_lock);
}

void api_server_set_pmtu_port(struct api_server *s, unsigned port)
{
	pthread_mutex_lock(&s->cas_lock);
	s->pmtu_port = port;
	pthread_mutex_unlock(&s->cas_lock);
}

void api_server_set_gateways(struct api_server *s, json_t *gateways, const char *probe)
{
	json_t *copy = json_deep_copy(gateways);
	char *probe_copy = probe && *probe ? strdup(probe) : NULL;
	pthread_mutex_lock(&s->cas_lock);
	json_t *old = s->gateways;
	char *old_probe = s->probe;
	s->gateways = copy;
	s->probe = probe_copy;
	pthread_mutex_unlock(&s->cas_lock);
	json_decref(old);
	free(old_probe);
}

void api_server_set_cas(struct api_server *s, json_t *cas)
{
	json_t *copy = json_deep_copy(cas); /* the caller's stays the caller's */
	pthread_mutex_lock(&s->cas_lock);
	json_t *old = s->api_cas;
	s->api_cas = copy;
	pthread_mutex_unlock(&s->cas_lock);
	json_decref(old);
}

/* Passes a validated request to its bus service and the answer back. */
static enum MHD_Result forward(struct api_server *s, struct MHD_Connection *conn, struct request *r,
                               json_t *request, const char *ip)
{
	const char *service = api_route_service(r->route);
	json_t *reply = NULL;
	mg_request(s->cfg.ctx, service, request, s->cfg.request_timeout_ms, &reply);
	json_decref(request);
	const char *code = mg_reply_error(reply);
	enum MHD_Result ret;
	if (!reply) {
		mg_error_log(s->cfg.ctx, "%s from %s: no reply", service, ip);
		ret = respond_error(conn, r, 500, "internal", "no reply", NULL);
	} else if (code) {
		unsigned status = api_http_status(code);
		const char *message = json_string_value(json_object_get(reply, "message"));
		char key[160]; /* a client can make these lines as often as it likes */
		snprintf(key, sizeof(key), "%s %s %s", service, ip, code);
		mg_log_limited(s->cfg.ctx, status >= 500 ? MG_LOG_WARN : MG_LOG_INFO, key,
		               "%s from %s: %u %s%s%s", service, ip, status, code,
		               message ? ": " : "", message ? message : "");
		ret = respond_error(conn, r, status, code, message, NULL);
	} else {
		/* devices ask for their config every few seconds: not worth a line */
		mg_log(s->cfg.ctx, r->route == API_ROUTE_DEVICE_CONFIG ? MG_LOG_DEBUG : MG_LOG_INFO,
		       "%s from %s: 200", service, ip);
		json_object_del(reply, "v"); /* the bus schema version, not the client's */
		/* where the device finds this API from inside the tunnel: only
		 * the api knows its own address and port */
		int configures =
		    r->route == API_ROUTE_REDEEM || r->route == API_ROUTE_DEVICE_CONFIG;
		if (*s->vpn_api && configures && !json_object_get(reply, "vpn_api"))
			json_object_set_new(reply, "vpn_api", json_string(s->vpn_api));
		/* what the device trusts from now on (the API of any node) and
		 * the nodes it may switch to */
		if (configures)
			add_nodes(s, reply);
		ret = respond(conn, r, MHD_HTTP_OK, json_incref(reply), NULL);
	}
	json_decref(reply);
	return ret;
}

/* A device asks for its config: it is the owner of its tunnel address,
 * which WireGuard's cryptokey routing vouches for (a peer can send only
 * from its allowed IPs), so the source address is its identity. From
 * anywhere else the question has no answer. */
static enum MHD_Result device_config(struct api_server *s, struct MHD_Connection *conn,
                                     struct request *r)
{
	char ip[INET6_ADDRSTRLEN];
	client_ip(conn, ip, sizeof(ip));
	if (!*s->vpn_prefix || api_ip_in_prefix(ip, s->vpn_prefix) != 1) {
		char key[160];
		snprintf(key, sizeof(key), "%s %s forbidden", api_route_service(r->route), ip);
		mg_log_limited(s->cfg.ctx, MG_LOG_INFO, key, "%s from %s: 403 not from the VPN",
		               api_route_service(r->route), ip);
		return respond_error(conn, r, 403, "forbidden",
		                     "only a device, through its tunnel, may ask for its config",
		                     NULL);
	}
	return forward(s, conn, r, json_pack("{s:s}", "address", ip), ip);
}

static enum MHD_Result no_oidc(struct MHD_Connection *conn, struct request *r)
{
	return respond_error(conn, r, MHD_HTTP_NOT_FOUND, "not_configured",
	                     "this gateway has no identity login (api.oidc)", NULL);
}

/* An ID token for a device's config: oidc.c makes the person's code, and
 * from there on it is a redeem like any other (the same answer). */
static enum MHD_Result oidc_enroll(struct api_server *s, struct MHD_Connection *conn,
                                   struct request *r, const char *ip)
{
	json_t *redeem, *answer;
	if (!s->cfg.oidc)
		return no_oidc(conn, r);
	unsigned status = api_oidc_enroll(s->cfg.oidc, r->body, r->len, ip, &redeem, &answer);
	if (status) {
		mg_log(s->cfg.ctx, MG_LOG_DEBUG, "oidc enroll from %s: %u", ip, status);
		return respond(conn, r, status, answer, NULL);
	}
	json_object_set_new(redeem, "source", json_string(ip));
	r->route = API_ROUTE_REDEEM;
	return forward(s, conn, r, redeem, ip);
}

static enum MHD_Result dispatch(struct api_server *s, struct MHD_Connection *conn,
                                struct request *r)
{
	char why[256], ip[INET6_ADDRSTRLEN];
	json_t *request = NULL;
	int rc;

	client_ip(conn, ip, sizeof(ip));
	if (r->route == API_ROUTE_OIDC_ENROLL)
		return oidc_enroll(s, conn, r, ip);
	if (r->route == API_ROUTE_REDEEM)
		rc = api_decode_redeem(r->body, r->len, &request, why, sizeof(why));
	else if (r->route == API_ROUTE_REGISTER)
		rc = api_decode_register(r->body, r->len, &request, why, sizeof(why));
	else
		rc = api_decode_key_step(r->path, r->body, r->len, &request, why, sizeof(why));
	if (rc) {
		mg_debug(s->cfg.ctx, "%s from %s: 400 %s", api_route_service(r->route), ip, why);
		return respond_error(conn, r, MHD_HTTP_BAD_REQUEST, "bad_request", why, NULL);
	}
	/* preauth limits failed redeems and registers by the client's address */
	json_object_set_new(request, "source", json_string(ip));
	return forward(s, conn, r, request, ip);
}

/* ---- MHD's callbacks ---- */

static time_t monotonic_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void start_dropping(struct request *r)
{
	r->too_large = 1;
	r->drop_deadline = monotonic_seconds() + API_DROP_SECONDS;
}

static enum MHD_Result too_large(struct api_server *s, struct MHD_Connection *conn,
                                 struct request *r)
{
	char message[128];
	snprintf(message, sizeof(message), "the body is larger than %zu bytes", s->cfg.max_body);
	return respond_error(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", message, NULL);
}

/* ---- the admin listener ---- */

static enum MHD_Result admin_too_large(struct api_server *s, struct MHD_Connection *conn,
                                       struct request *r)
{
	return respond(conn, r, MHD_HTTP_CONTENT_TOO_LARGE,
	               api_admin_error("too_large", NULL, "the body is larger than %zu bytes",
	                               s->cfg.max_body),
	               NULL);
}

/* A body announced larger than max_body, on either listener (each answers
 * in its own error shape). Answering now and closing makes the kernel
 * reset a connection whose unread body is still arriving, and the client
 * may lose the answer. A client that waits for "100 Continue" sends no
 * body, and a huge body is not worth reading: answer those now. Anything
 * else is dropped as it arrives, then answered. */
static enum MHD_Result judge_announced_size(struct api_server *s, struct MHD_Connection *conn,
                                            struct request *r)
{
	const char *length =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long announced = length ? strtoull(length, NULL, 10) : 0;
	if (announced > s->cfg.max_body) {
		if (announced > API_DROP_MAX ||
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT))
			return s->cfg.admin ? admin_too_large(s, conn, r) : too_large(s, conn, r);
		start_dropping(r);
	}
	return MHD_YES;
}

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
	(void)kind;
	json_object_set_new(cls, key, json_string(value ? value : ""));
	return MHD_YES;
}

/* ---- the admins' sign-in with the identity provider (oidc.h) ---- */

/* A Host header fit for a URL: a name or an address, maybe a port. */
static int host_valid(const char *host)
{
	size_t n = host ? strlen(host) : 0;
	if (!n || n > 255)
		return 0;
	for (const char *c = host; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr(".-:[]", *c)))
			return 0;
	return 1;
}

/* 302 to `location`; with `who`, a new session of the panel for them. */
static enum MHD_Result redirect(struct api_server *s, struct MHD_Connection *conn,
                                struct request *r, const char *location, const char *who,
                                enum api_role role)
{
	char why[256];
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	api_panel_secure(resp);
	if (who && api_session_open(s->cfg.admin, who, role, resp, why, sizeof(why))) {
		MHD_destroy_response(resp);
		return respond(conn, r, 503, api_admin_error("unavailable", NULL, "%s", why), NULL);
	}
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_FOUND, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		r->answered = 1;
	return ret;
}

/* A sign-in refused, in the admin API's error shape. */
static enum MHD_Result signin_refused(struct MHD_Connection *conn, struct request *r,
                                      unsigned status, const char *why)
{
	static const struct {
		unsigned status;
		const char *code;
	} codes[] = {{400, "bad_request"},
	             {403, "identity_refused"},
	             {404, "not_found"},
	             {429, "rate_limited"},
	             {502, "provider_unavailable"}};
	const char *code = "internal";
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].status == status)
			code = codes[i].code;
	return respond(conn, r, status, api_admin_error(code, NULL, "%s", why), NULL);
}

/* GET /auth/oidc/login: off to the provider; GET /auth/oidc/callback:
 * back from it, signed in (a session, then the panel) or refused. */
static enum MHD_Result oidc_signin(struct api_server *s, struct MHD_Connection *conn,
                                   struct request *r, const char *url, const char *method)
{
	char ip[INET6_ADDRSTRLEN], redirect_uri[300], location[4096], why[512];
	char who[API_SESSION_WHO_MAX + 1];
	enum api_role role;
	int login = !strcmp(url, "/auth/oidc/login");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (!login && strcmp(url, "/auth/oidc/callback"))
		return signin_refused(conn, r, 404, "no such path");
	if (!api_oidc_admins(s->cfg.oidc))
		return signin_refused(conn, r, 404,
		                      "no sign-in with an identity provider here "
		                      "(api.oidc.admin_roles)");
	if (strcmp(method, "GET"))
		return respond(conn, r, 405,
		               api_admin_error("method_not_allowed", NULL, "only GET here"), "GET");
	if (!host_valid(host))
		return signin_refused(conn, r, 400, "a Host header is needed");
	/* the provider sends the browser back to the host it came from */
	snprintf(redirect_uri, sizeof(redirect_uri), "https://%s/auth/oidc/callback", host);
	if (login) {
		unsigned status = api_oidc_signin_start(s->cfg.oidc, redirect_uri, location,
		                                        sizeof(location), why, sizeof(why));
		return status ? signin_refused(conn, r, status, why)
		              : redirect(s, conn, r, location, NULL, API_ROLE_NONE);
	}
	const char *error = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "error");
	if (error) {
		snprintf(why, sizeof(why), "the identity provider refused: %.100s", error);
		return signin_refused(conn, r, 403, why);
	}
	client_ip(conn, ip, sizeof(ip));
	unsigned status = api_oidc_signin_finish(
	    s->cfg.oidc, MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "code"),
	    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state"), redirect_uri, ip,
	    who, sizeof(who), &role, why, sizeof(why));
	return status ? signin_refused(conn, r, status, why) : redirect(s, conn, r, "/", who, role);
}

/* The whole request is in: api_admin_handle answers it. */
static enum MHD_Result admin_answer(struct api_server *s, struct MHD_Connection *conn,
                                    struct request *r, const char *url, const char *method)
{
	char ip[INET6_ADDRSTRLEN], allow[128];
	if (!strncmp(url, "/auth/oidc/", 11))
		return oidc_signin(s, conn, r, url, method);
	/* the API's paths; every other is the panel's */
	if (strncmp(url, "/api/", 5)) {
		enum MHD_Result ret = api_panel_answer(s->cfg.panel, conn, url, method);
		r->answered = ret == MHD_YES;
		return ret;
	}
	json_t *answer = NULL, *query = json_object();
	client_ip(conn, ip, sizeof(ip));
	if (r->too_large) {
		json_decref(query);
		return admin_too_large(s, conn, r);
	}
	const char *type =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (r->len && !api_content_type_is_json(type)) {
		json_decref(query);
		return respond(conn, r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		               api_admin_error("unsupported_media_type", NULL,
		                               "the body must be application/json"),
		               NULL);
	}
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_query_arg, query);
	struct api_admin_call call = {
	    .method = method,
	    .path = url,
	    .authorization =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
	    .session = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, API_SESSION_COOKIE),
	    .csrf = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token"),
	    .source = ip,
	    .query = query,
	    .body = r->body,
	    .len = r->len,
	};
	unsigned status = api_admin_handle(s->cfg.admin, &call, &answer, allow, sizeof(allow));
	json_decref(query);
	return respond_cookie(conn, r, status, answer, status == 405 ? allow : NULL,
	                      call.set_cookie);
}

/* The first call of a request: everything that can be judged from the
 * request line and the headers is judged here, before any body is read. */
static enum MHD_Result begin(struct api_server *s, struct MHD_Connection *conn, struct request *r,
                             const char *url, const char *method)
{
	const char *allow = NULL;
	if (s->cfg.admin) /* the rest is judged once the body is in (admin_answer) */
		return judge_announced_size(s, conn, r);
	r->route = api_route_find(url);
	if (r->route == API_ROUTE_NONE)
		return respond_error(conn, r, MHD_HTTP_NOT_FOUND, "not_found", "no such path",
		                     NULL);
	if (!api_method_allowed(r->route, method, &allow))
		return respond_error(conn, r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
		                     "method not allowed on this path", allow);
	if (r->route == API_ROUTE_HEALTH || r->route == API_ROUTE_LIVE ||
	    r->route == API_ROUTE_DEVICE_CONFIG || r->route == API_ROUTE_OIDC)
		return MHD_YES; /* answered on the last call: MHD keeps the connection */
	if ((r->route == API_ROUTE_NEXT_KEY || r->route == API_ROUTE_SWITCH_KEY) &&
	    !(r->path = strdup(url)))
		return MHD_NO;

	const char *type =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!api_content_type_is_json(type))
		return respond_error(conn, r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		                     "unsupported_media_type", "the body must be application/json",
		                     NULL);
	return judge_announced_size(s, conn, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct request *r = *con_cls;
	(void)version;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		enum MHD_Result ret = begin(s, conn, r, url, method);
		if (r->answered)
			conn_reading(s, conn, 0);
		return ret;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->answered)
			return MHD_YES;
		if (r->too_large)
			/* MHD (0.9.75) cannot answer in the middle of a body: it is
			 * dropped as it comes, for a while, then the connection is cut */
			return monotonic_seconds() > r->drop_deadline ? MHD_NO : MHD_YES;
		if (n > s->cfg.max_body - r->len) {
			free(r->body);
			r->body = NULL;
			start_dropping(r);
			return MHD_YES;
		}
		char *grown = realloc(r->body, r->len + n);
		if (!grown)
			return MHD_NO;
		memcpy(grown + r->len, upload_data, n);
		r->body = grown;
		r->len += n;
		return MHD_YES;
	}
	conn_reading(s, conn, 0); /* the request is whole: it is served, not slow */
	if (r->answered)
		return MHD_YES;
	if (s->cfg.admin)
		return admin_answer(s, conn, r, url, method);
	if (r->too_large)
		return too_large(s, conn, r);
	if (r->route == API_ROUTE_HEALTH)
		return health(s, conn, r);
	if (r->route == API_ROUTE_LIVE)
		return respond(conn, r, MHD_HTTP_OK,
		               json_pack("{s:s, s:s}", "status", "live", "version", MG_VERSION),
		               NULL);
	if (r->route == API_ROUTE_DEVICE_CONFIG)
		return device_config(s, conn, r);
	if (r->route == API_ROUTE_OIDC) {
		json_t *answer;
		if (!s->cfg.oidc)
			return no_oidc(conn, r);
		unsigned status = api_oidc_public(s->cfg.oidc, &answer);
		return respond(conn, r, status, answer, NULL);
	}
	return dispatch(s, conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;
	(void)toe;
	/* a keep-alive connection waits for its next request: reading again */
	conn_reading(cls, conn, 1);
	if (r) {
		free(r->path);
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

/* MHD's own complaints (TLS handshakes that fail, clients that vanish) are
 * the client's business, not the operator's: debug. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct api_server *s = cls;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	mg_debug(s->cfg.ctx, "http: %s", line);
}

/* ---- start and stop ---- */

/* The listening socket is made here, not by MHD, so that a failed bind
 * reports its errno. */
int api_listen_on(const struct sockaddr_storage *addr, socklen_t addrlen, unsigned backlog,
                  const char *name, int freebind, char *why, size_t whylen)
{
	int one = 1, zero = 0;
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, whylen, "cannot listen on %s: socket: %s", name, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* the VPN address appears with the wireguard interface, maybe later */
	if (freebind && addr->ss_family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	else if (freebind)
		setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
	/* "[::]" means every address, IPv4 included */
	if (addr->ss_family == AF_INET6 && api_addr_is_any(addr))
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (const struct sockaddr *)addr, addrlen) || listen(fd, (int)backlog)) {
		snprintf(why, whylen, "cannot listen on %s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* One MHD daemon on one listening address: NULL with the reason in why. */
static struct MHD_Daemon *serve_on(struct api_server *s, const char *listen, int freebind,
                                   unsigned threads, char *why, size_t whylen)
{
	struct sockaddr_storage addr;
	socklen_t addrlen;
	if (api_parse_listen(listen, &addr, &addrlen, why, whylen))
		return NULL;
	int fd = api_listen_on(&addr, addrlen, s->cfg.backlog, listen, freebind, why, whylen);
	if (fd < 0)
		return NULL;
	unsigned flags =
	    MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem pool[] = {
	    {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
	    {MHD_OPTION_END, 0, NULL},
	};
	/* MHD closes fd if it fails to start */
	/* connection_limit is kept by on_accept, which frees a slot when all are
	 * taken; MHD's own limit is only the hard ceiling behind it. Each thread
	 * of the pool gets its share of MHD's limit: twice ours leaves room for
	 * an uneven share and for the slots being reclaimed. */
	unsigned ceiling = s->cfg.connection_limit * 2;
	struct MHD_Daemon *mhd = MHD_start_daemon(
	    flags, 0, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_HTTPS_MEM_CERT, s->chain_pem,
	    MHD_OPTION_HTTPS_MEM_KEY, s->key_pem, MHD_OPTION_HTTPS_PRIORITIES, s->priorities,
	    MHD_OPTION_CONNECTION_LIMIT, ceiling, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    s->cfg.per_ip_limit, MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
	    on_connection, s, MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
	if (!mhd)
		snprintf(why, whylen,
		         "cannot start the HTTPS server on %s (certificate, key or tls_priorities "
		         "refused; log_level = \"debug\" shows why)",
		         listen);
	return mhd;
}

static char *dup_or_empty(const char *text)
{
	return strdup(text ? text : "");
}

struct api_server *api_server_start(const struct api_server_config *cfg, char *why, size_t whylen)
{
	struct sockaddr_storage addr;
	socklen_t addrlen;
	if (api_parse_listen(cfg->listen, &addr, &addrlen, why, whylen))
		return NULL;
	struct api_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	pthread_mutex_init(&s->conns.lock, NULL);
	pthread_mutex_init(&s->cas_lock, NULL);
	s->chain_pem = strdup(cfg->chain_pem);
	s->key_pem = strdup(cfg->key_pem);
	s->priorities = strdup(cfg->priorities);
	s->vpn_prefix = dup_or_empty(cfg->vpn_prefix);
	s->vpn_api = dup_or_empty(cfg->vpn_api);
	if (!s->chain_pem || !s->key_pem || !s->priorities || !s->vpn_prefix || !s->vpn_api) {
		snprintf(why, whylen, "out of memory");
		api_server_stop(s);
		return NULL;
	}
	s->cfg.listen = s->cfg.extra_listen = s->cfg.vpn_prefix = s->cfg.vpn_api = NULL;
	if (!(s->mhd = serve_on(s, cfg->listen, cfg->freebind, cfg->threads, why, whylen))) {
		api_server_stop(s);
		return NULL;
	}
	/* The VPN side is a convenience for devices: without it the API still
	 * serves, and devices are told nothing about it. */
	if (cfg->extra_listen && *cfg->extra_listen &&
	    !(s->mhd_vpn = serve_on(s, cfg->extra_listen, 1, cfg->threads, s->vpn_error,
	                            sizeof(s->vpn_error))))
		s->vpn_api[0] = '\0';
	return s;
}

const char *api_server_vpn_error(const struct api_server *s)
{
	return s ? s->vpn_error : "";
}

const char *api_server_vpn_api(const struct api_server *s)
{
	return s && s->vpn_api ? s->vpn_api : "";
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	if (s->mhd_vpn)
		MHD_stop_daemon(s->mhd_vpn);
	if (s->mhd)
		MHD_stop_daemon(s->mhd); /* joins its threads, forgets every connection */
	free(s->conns.all);
	pthread_mutex_destroy(&s->conns.lock);
	pthread_mutex_destroy(&s->cas_lock);
	json_decref(s->api_cas);
	json_decref(s->gateways);
	free(s->probe);
	free(s->vpn_prefix);
	free(s->vpn_api);
	free(s->chain_pem);
	if (s->key_pem)
		memset(s->key_pem, 0, strlen(s->key_pem));
	free(s->key_pem);
	free(s->priorities);
	free(s);
}
