/* dns: the descriptor, its settings, its lifecycle and its event loop.
 * docs/dns.md describes the behaviour; dns.h how the parts fit. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dns.h"

static const struct mg_setting record_fields[] = {
    {"name", MG_SETTING_STRING, NULL,
     "A host name inside the zone (\"gitlab\", \"db.prod\"; \"gitlab.corp.internal\" too).", NULL,
     1},
    {"address", MG_SETTING_STRING, NULL,
     "Its IPv4 or IPv6 address; several records of one name give it several addresses.", NULL, 1},
    {0},
};

static const struct mg_setting settings[] = {
    {"listen", MG_SETTING_STRINGS, NULL,
     "Addresses to answer on, UDP and TCP: \"IP\" or \"IP:PORT\" (\"[IPv6]:PORT\"). "
     "Default: the gateway's VPN address (wireguard.address) on port 53, followed when it "
     "changes. They may not exist yet when meshgated starts (the wireguard plugin adds the "
     "VPN address): the sockets are bound with IP_FREEBIND.",
     NULL, 0},
    {"zone", MG_SETTING_STRING, "\"corp.internal\"",
     "The zone the server is authoritative for: devices are NAME.ZONE, records NAME.ZONE.", NULL,
     0},
    {"upstream", MG_SETTING_STRINGS, "[]",
     "Resolvers that answer every name outside the zone, tried in turn (\"IP\" or "
     "\"IP:PORT\"). Empty: such names are refused.",
     NULL, 0},
    {"records", MG_SETTING_LIST, "()",
     "Service records: ( { name = \"gitlab\"; address = \"172.19.0.10\"; }, ... ). More are "
     "added at runtime with `meshgatectl dns add`.",
     record_fields, 0},
    {"ttl", MG_SETTING_INT, "30",
     "TTL of the answers, and how long clients may cache a NXDOMAIN, in seconds.", NULL, 0},
    {"upstream_timeout_ms", MG_SETTING_INT, "1000",
     "How long an upstream has to answer before the next one is tried, in milliseconds; when "
     "none answers the client gets SERVFAIL.",
     NULL, 0},
    {"allow", MG_SETTING_STRINGS, "[]",
     "Client networks answered besides the VPN subnet and loopback (\"192.168.10.0/24\"). "
     "Everyone else is ignored: the server is never an open resolver.",
     NULL, 0},
    {"fast_path", MG_SETTING_BOOL, "true",
     "Read common queries and write their answers with meshgate's own code (fuzzed against "
     "ldns); false sends every packet through ldns, at about half the queries per CPU-second.",
     NULL, 0},
    {0},
};

/* ---- settings ---- */

static int fail_setting(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_setting(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int listen_setting(json_t *cfg, struct dns_settings *s, char *err, size_t errlen)
{
	json_t *listen = json_object_get(cfg, "listen"), *l;
	size_t i;
	if (!listen) /* the VPN address, from wg/server */
		return 0;
	if (!json_array_size(listen) || json_array_size(listen) > DNS_MAX_LISTEN)
		return fail_setting(err, errlen, "dns.listen: 1 to %d addresses", DNS_MAX_LISTEN);
	json_array_foreach(listen, i, l)
	{
		struct sockaddr_storage ss;
		socklen_t len;
		if (dns_sockaddr_parse(json_string_value(l), 53, &ss, &len))
			return fail_setting(
			    err, errlen, "dns.listen[%zu]: '%s' is not IP, IP:PORT or [IPv6]:PORT",
			    i, json_string_value(l));
		for (size_t j = 0; j < i; j++)
			if (!strcmp(json_string_value(json_array_get(listen, j)),
			            json_string_value(l)))
				return fail_setting(err, errlen, "dns.listen: '%s' appears twice",
				                    json_string_value(l));
	}
	s->listen = json_incref(listen);
	return 0;
}

static int zone_setting(json_t *cfg, struct dns_settings *s, char *err, size_t errlen)
{
	const char *zone = json_string_value(json_object_get(cfg, "zone"));
	if (dns_name_from_text(zone, s->zone, &s->zone_len))
		return fail_setting(
		    err, errlen,
		    "dns.zone: '%s' is not a domain name (labels of letters, digits, "
		    "'-', '_')",
		    zone);
	dns_name_to_text(s->zone, s->zone_len, s->zone_text, sizeof(s->zone_text));
	return 0;
}

static int upstream_setting(json_t *cfg, struct dns_settings *s, char *err, size_t errlen)
{
	json_t *up = json_object_get(cfg, "upstream"), *u;
	size_t i;
	if (json_array_size(up) > DNS_MAX_UPSTREAMS)
		return fail_setting(err, errlen, "dns.upstream: at most %d resolvers",
		                    DNS_MAX_UPSTREAMS);
	json_array_foreach(up, i, u)
	{
		if (dns_sockaddr_parse(json_string_value(u), 53, &s->upstream[i],
		                       &s->upstream_len[i]))
			return fail_setting(
			    err, errlen,
			    "dns.upstream[%zu]: '%s' is not IP, IP:PORT or [IPv6]:PORT", i,
			    json_string_value(u));
		/* forwarding to ourselves would loop */
		json_t *l;
		size_t k;
		json_array_foreach(s->listen, k, l)
		{
			struct sockaddr_storage ss;
			socklen_t len;
			if (!dns_sockaddr_parse(json_string_value(l), 53, &ss, &len) &&
			    len == s->upstream_len[i] && !memcmp(&ss, &s->upstream[i], len))
				return fail_setting(err, errlen,
				                    "dns.upstream[%zu]: '%s' is this server itself",
				                    i, json_string_value(u));
		}
	}
	s->nupstream = json_array_size(up);
	return 0;
}

static int records_setting(json_t *cfg, struct dns_settings *s, char *err, size_t errlen)
{
	json_t *records = json_object_get(cfg, "records"), *r;
	size_t i;
	s->records = json_array();
	json_t *count = json_object();
	json_array_foreach(records, i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *address = json_string_value(json_object_get(r, "address"));
		char text[DNS_TEXT_MAX], host[INET6_ADDRSTRLEN];
		uint8_t wire[DNS_NAME_MAX], addr[16], full[DNS_NAME_MAX];
		size_t wlen, flen;
		int family;
		if (dns_relative_name(name, s->zone_text, text, sizeof(text)) ||
		    dns_name_from_text(text, wire, &wlen) ||
		    dns_name_concat(wire, wlen, s->zone, s->zone_len, full, &flen)) {
			json_decref(count);
			return fail_setting(
			    err, errlen, "dns.records[%zu].name: '%s' is not a host name", i, name);
		}
		if (strchr(address, '/') || dns_ip_parse(address, &family, addr)) {
			json_decref(count);
			return fail_setting(
			    err, errlen,
			    "dns.records[%zu].address: '%s' is not an IPv4 or IPv6 address", i,
			    address);
		}
		json_int_t n = json_integer_value(json_object_get(count, text)) + 1;
		json_object_set_new(count, text, json_integer(n));
		if (n > DNS_RR_PER_NAME) {
			json_decref(count);
			return fail_setting(err, errlen,
			                    "dns.records: '%s' has more than %d addresses", text,
			                    DNS_RR_PER_NAME);
		}
		inet_ntop(family, addr, host, sizeof(host));
		json_array_append_new(s->records,
		                      json_pack("{s:s, s:s}", "name", text, "address", host));
	}
	json_decref(count);
	return 0;
}

static int allow_setting(json_t *cfg, struct dns_settings *s, char *err, size_t errlen)
{
	json_t *allow = json_object_get(cfg, "allow"), *a;
	size_t i;
	if (json_array_size(allow) > DNS_MAX_PREFIXES / 2)
		return fail_setting(err, errlen, "dns.allow: at most %d networks",
		                    DNS_MAX_PREFIXES / 2);
	json_array_foreach(allow, i, a)
	{
		if (dns_prefix_parse(json_string_value(a), &s->allow[i]))
			return fail_setting(err, errlen, "dns.allow[%zu]: '%s' is not a network", i,
			                    json_string_value(a));
	}
	s->nallow = json_array_size(allow);
	return 0;
}

static int int_setting(json_t *cfg, const char *name, long min, long max, long *out, char *err,
                       size_t errlen)
{
	json_int_t v = json_integer_value(json_object_get(cfg, name));
	if (v < min || v > max)
		return fail_setting(err, errlen, "dns.%s: %lld is not between %ld and %ld", name,
		                    (long long)v, min, max);
	*out = (long)v;
	return 0;
}

int dns_settings_load(json_t *cfg, struct dns_settings *s, char *err, size_t errlen)
{
	long ttl = 0, timeout = 0;
	memset(s, 0, sizeof(*s));
	int rc = listen_setting(cfg, s, err, errlen);
	if (!rc)
		rc = zone_setting(cfg, s, err, errlen);
	if (!rc)
		rc = upstream_setting(cfg, s, err, errlen);
	if (!rc)
		rc = records_setting(cfg, s, err, errlen);
	if (!rc)
		rc = allow_setting(cfg, s, err, errlen);
	if (!rc)
		rc = int_setting(cfg, "ttl", 0, 86400, &ttl, err, errlen);
	if (!rc)
		rc = int_setting(cfg, "upstream_timeout_ms", 50, 60000, &timeout, err, errlen);
	s->ttl = (uint32_t)ttl;
	s->upstream_timeout_ms = (unsigned)timeout;
	s->fast_path = json_is_true(json_object_get(cfg, "fast_path"));
	if (rc)
		dns_settings_free(s);
	return rc;
}

void dns_settings_free(struct dns_settings *s)
{
	json_decref(s->listen);
	json_decref(s->records);
	s->listen = s->records = NULL;
}

/* ---- the plugin thread's epoll set, one fd watched by the core ---- */

int dns_io_add(struct dns *d, struct dns_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	io->d = d;
	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, io->fd, &ev) ? -errno : 0;
}

int dns_io_mod(struct dns *d, struct dns_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	return epoll_ctl(d->epfd, EPOLL_CTL_MOD, io->fd, &ev) ? -errno : 0;
}

void dns_io_del(struct dns *d, struct dns_io *io)
{
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* One event at a time: a callback may free what another ready event
 * points to (an upstream's answer closes the TCP connection it goes to);
 * what stays ready is reported again, the set being level-triggered. */
static void on_epoll(mg_ctx *ctx, int fd, int events, void *arg)
{
	(void)ctx;
	(void)events;
	(void)arg;
	for (int i = 0; i < 256; i++) {
		struct epoll_event ev;
		if (epoll_wait(fd, &ev, 1, 0) != 1)
			return;
		struct dns_io *io = ev.data.ptr;
		io->fn(io, ev.events);
	}
}

static void sweep(mg_ctx *ctx, void *arg)
{
	struct dns *d = arg;
	uint64_t now = mg_now_ms(ctx);
	size_t left = dns_fwd_sweep(d, now) + dns_tcp_sweep(d, now);
	if (!left && d->sweep_timer > 0) {
		mg_timer_del(ctx, d->sweep_timer);
		d->sweep_timer = 0;
	}
}

void dns_sweep_needed(struct dns *d)
{
	if (d->sweep_timer > 0)
		return;
	int id = mg_timer_add(d->ctx, DNS_SWEEP_MS, 1, sweep, d);
	d->sweep_timer = id > 0 ? id : 0;
}

static void listen_ready(struct dns_io *io, uint32_t events)
{
	(void)events;
	dns_tcp_accept(io->d, io->fd);
}

static void handoff_ready(struct dns_io *io, uint32_t events)
{
	(void)events;
	for (struct dns_handoff *h = dns_handoff_take(&io->d->srv), *next; h; h = next) {
		next = h->next;
		h->next = NULL;
		dns_fwd_udp(io->d, h);
	}
}

/* ---- listeners ---- */

static void listener_free(struct dns *d, struct dns_listener *l)
{
	if (l->io.fn)
		dns_io_del(d, &l->io);
	dns_listener_close(l);
	free(l);
}

static struct dns_listener *listener_new(struct dns *d, const char *text)
{
	char err[300];
	struct dns_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->udp = l->tcp = -1;
	snprintf(l->text, sizeof(l->text), "%s", text);
	dns_sockaddr_parse(text, 53, &l->addr, &l->addrlen);
	if (dns_listener_open(l, err, sizeof(err)) ||
	    dns_listener_start(l, &d->srv, err, sizeof(err))) {
		mg_error_log(d->ctx, "%s", err);
		listener_free(d, l);
		return NULL;
	}
	l->io = (struct dns_io){listen_ready, l->tcp, d};
	if (dns_io_add(d, &l->io, EPOLLIN)) {
		l->io.fn = NULL;
		listener_free(d, l);
		return NULL;
	}
	return l;
}

/* The listeners of `list`, keeping the running ones that stay; on failure
 * nothing changes. */
static int open_listeners(struct dns *d, json_t *list)
{
	struct dns_listener *next[DNS_MAX_LISTEN] = {0};
	int kept[DNS_MAX_LISTEN] = {0}, fresh[DNS_MAX_LISTEN] = {0}, dropped = 0;
	size_t n = json_array_size(list);

	for (size_t i = 0; i < n; i++) {
		const char *text = json_string_value(json_array_get(list, i));
		for (size_t k = 0; k < d->nlisteners && !next[i]; k++)
			if (!kept[k] && !strcmp(d->listeners[k]->text, text)) {
				kept[k] = 1;
				next[i] = d->listeners[k];
			}
		if (next[i])
			continue;
		if (!(next[i] = listener_new(d, text))) {
			for (size_t j = 0; j < i; j++)
				if (fresh[j])
					listener_free(d, next[j]);
			return -EADDRNOTAVAIL;
		}
		fresh[i] = 1;
	}
	for (size_t k = 0; k < d->nlisteners; k++)
		if (!kept[k]) {
			listener_free(d, d->listeners[k]);
			dropped = 1;
		}
	/* their pending forwards would answer from a closed socket */
	if (dropped && dns_fwd_pending(d)) {
		dns_fwd_free(d);
		d->fwd = dns_fwd_new();
	}
	memcpy(d->listeners, next, sizeof(next));
	d->nlisteners = n;
	return 0;
}

json_t *dns_listen_wanted(const struct dns *d, const struct dns_settings *s)
{
	char text[INET6_ADDRSTRLEN + 8];
	if (s->listen)
		return json_incref(s->listen);
	if (!d->vpn_host[0])
		return json_array();
	snprintf(text, sizeof(text), strchr(d->vpn_host, ':') ? "[%s]:53" : "%s:53", d->vpn_host);
	return json_pack("[s]", text);
}

/* ns.ZONE's addresses: where clients find the server, loopback left out
 * unless there is nothing else (a server on loopback only). */
static json_t *ns_addresses(const struct dns *d)
{
	json_t *all = dns_server_addresses(d), *outside = json_array(), *a;
	size_t i;
	json_array_foreach(all, i, a)
	{
		uint8_t addr[16];
		int family;
		if (dns_ip_parse(json_string_value(a), &family, addr))
			continue;
		if (family == AF_INET ? addr[0] != 127
		                      : !IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)addr))
			json_array_append(outside, a);
	}
	if (!json_array_size(outside)) {
		json_decref(outside);
		return all;
	}
	json_decref(all);
	return outside;
}

int dns_listen_update(struct dns *d, const struct dns_settings *s)
{
	json_t *wanted = dns_listen_wanted(d, s);
	int rc = 0;
	if (!wanted)
		return -ENOMEM;
	if (!d->listening || !json_equal(wanted, d->listening)) {
		if ((rc = open_listeners(d, wanted))) {
			json_decref(wanted);
			return rc;
		}
		json_decref(d->listening);
		d->listening = json_incref(wanted);
		if (!s->listen)
			mg_info(d->ctx, "listening on the VPN address: %s",
			        json_array_size(wanted)
			            ? json_string_value(json_array_get(wanted, 0))
			            : "none yet (waiting for wg/server)");
	}
	json_decref(wanted);
	json_decref(d->ns_addresses);
	d->ns_addresses = ns_addresses(d);
	return d->ns_addresses ? 0 : -ENOMEM;
}

/* ---- lifecycle ---- */

static const struct {
	const char *name;
	mg_service_fn fn;
} services[] = {
    {"dns.add", dns_svc_add},     {"dns.del", dns_svc_del},         {"dns.list", dns_svc_list},
    {"dns.stats", dns_svc_stats}, {"dns.metrics", dns_svc_metrics},
};

static void dns_free(struct dns *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nlisteners; i++)
		listener_free(d, d->listeners[i]);
	d->nlisteners = 0;
	dns_fwd_free(d);
	dns_tcp_free(d);
	if (d->srv_ready)
		dns_server_destroy(&d->srv);
	if (d->epfd >= 0)
		close(d->epfd);
	dns_settings_free(&d->cfg);
	dns_names_free(d->devices);
	json_decref(d->runtime);
	json_decref(d->listening);
	json_decref(d->ns_addresses);
	free(d);
}

static int dns_init(mg_ctx *ctx)
{
	char err[400];
	struct dns *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ctx = ctx;
	d->epfd = -1;
	d->srv.evfd = -1;
	ctx->self = d;
	int rc = dns_settings_load(mg_config(ctx), &d->cfg, err, sizeof(err));
	if (rc) {
		mg_error_log(ctx, "%s", err);
		goto fail;
	}
	if ((rc = dns_server_init(&d->srv, err, sizeof(err)))) {
		mg_error_log(ctx, "%s", err);
		goto fail;
	}
	d->srv_ready = 1;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->devices = dns_names_new();
	d->runtime = json_object();
	d->fwd = dns_fwd_new();
	d->tcp = dns_tcp_new();
	if (d->epfd < 0 || !d->devices || !d->runtime || !d->fwd || !d->tcp) {
		rc = -ENOMEM;
		goto fail;
	}
	d->handoff_io = (struct dns_io){handoff_ready, d->srv.evfd, d};
	for (size_t i = 0; !rc && i < sizeof(services) / sizeof(services[0]); i++)
		rc = mg_service_add(ctx, services[i].name, services[i].fn, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "device.changed", dns_device_changed, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state.wg", dns_wg_changed, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state." DNS_DB, dns_records_changed, NULL);
	if (!rc)
		rc = dns_io_add(d, &d->handoff_io, EPOLLIN);
	if (!rc)
		rc = mg_fd_watch(ctx, d->epfd, MG_FD_READ, on_epoll, NULL);
	if (!rc)
		rc = dns_rebuild(d); /* the config's names, until start reads state */
	if (rc)
		goto fail;
	return 0;
fail:
	dns_free(d);
	ctx->self = NULL;
	return rc;
}

static int dns_start(mg_ctx *ctx)
{
	struct dns *d = ctx->self;
	int rc = dns_sources_load(d);
	if (rc) {
		mg_error_log(ctx, "cannot read the devices and records: %s", strerror(-rc));
		return rc;
	}
	if ((rc = dns_listen_update(d, &d->cfg)))
		return rc;
	if ((rc = dns_rebuild(d)))
		return rc;
	mg_ready(ctx); /* every name of state is served */
	dns_publish_server(d);
	mg_info(ctx, "serving %s (%zu names, %zu devices) on %zu address(es), %zu upstream(s)",
	        d->cfg.zone_text, dns_index_names(d->srv.index), dns_names_devices(d->devices),
	        d->nlisteners, d->cfg.nupstream);
	return 0;
}

static int dns_reload(mg_ctx *ctx)
{
	struct dns *d = ctx->self;
	struct dns_settings next, old;
	char err[400];
	int rc = dns_settings_load(mg_config(ctx), &next, err, sizeof(err));
	if (rc) {
		mg_error_log(ctx, "%s (the running config stays)", err);
		return rc;
	}
	if ((rc = dns_listen_update(d, &next))) {
		dns_settings_free(&next);
		return rc;
	}
	old = d->cfg;
	d->cfg = next;
	dns_settings_free(&old);
	/* a record of the config may now be the name of a runtime one: both stay */
	rc = dns_rebuild(d);
	dns_publish_server(d);
	return rc;
}

static void dns_stop(mg_ctx *ctx)
{
	dns_free(ctx->self);
	ctx->self = NULL;
}

static const char *const dns_owns[] = {DNS_DB, DNS_NODE_DB, NULL};
/* every node of a cluster serves the same runtime records */
static const char *const dns_cluster[] = {DNS_DB, NULL};

MG_PLUGIN(.name = "dns", .version = "0.1.0",
          .description = "the gateway's name server: devices and services by name, the rest "
                         "forwarded",
          .owns = dns_owns, .cluster = dns_cluster, .settings = settings, .init = dns_init,
          .start = dns_start, .reload = dns_reload, .stop = dns_stop);
