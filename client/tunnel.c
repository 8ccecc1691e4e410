#include "tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "full_tunnel.h"
#include "nl.h"
#include "wg.h"

#define POLL_MS  100
#define NUDGE_MS 1000
/* A handshake answers well within this on any real network: past it, the
 * server's peer is made anew rather than left to WireGuard's 5 s retry. */
#define RENEW_MS 2000
/* The peer's allowed IPs: the profile's, and 0.0.0.0/0 for a full tunnel. */
#define PEER_IPS_MAX (CL_MAX_ALLOWED_IPS + 1)

/* What `down` needs and nothing else can tell it: the backend, the
 * wireguard-go we started, the route that keeps the server reachable when
 * the tunnel covers it. */
struct tunnel_state {
	char backend[16];
	pid_t pid;
	char bypass_dst[CL_PREFIX_STRLEN];
	char bypass_gw[CL_PREFIX_STRLEN];
	char bypass_dev[IF_NAMESIZE];
	struct cl_full_tunnel full;
};

static void state_path(const struct cl_tunnel_opts *o, const char *ext, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.%s", o->state_dir, o->ifname, ext);
}

static int state_save(const struct cl_tunnel_opts *o, const struct tunnel_state *s,
                      struct cl_err *err)
{
	char path[4096], text[512];
	snprintf(text, sizeof(text), "backend=%s\npid=%ld\nbypass=%s %s %s\nfull_tunnel=%u %d\n",
	         s->backend, (long)s->pid, *s->bypass_dst ? s->bypass_dst : "-",
	         *s->bypass_gw ? s->bypass_gw : "-", *s->bypass_dev ? s->bypass_dev : "-",
	         s->full.table, s->full.valid_mark_before);
	state_path(o, "state", path, sizeof(path));
	return cl_write_private_file(path, text, err);
}

static void copy_field(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", strcmp(src, "-") ? src : "");
}

/* 0, or -ENOENT when there is no state file. */
static int state_load(const struct cl_tunnel_opts *o, struct tunnel_state *s)
{
	char path[4096], line[256];
	memset(s, 0, sizeof(*s));
	s->full.valid_mark_before = -1;
	state_path(o, "state", path, sizeof(path));
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char a[64], b[64], c[64];
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "backend=", 8))
			copy_field(s->backend, sizeof(s->backend), line + 8);
		else if (!strncmp(line, "pid=", 4))
			s->pid = (pid_t)atol(line + 4);
		else if (sscanf(line, "full_tunnel=%u %d", &s->full.table,
		                &s->full.valid_mark_before) == 2)
			continue;
		else if (sscanf(line, "bypass=%63s %63s %63s", a, b, c) == 3) {
			copy_field(s->bypass_dst, sizeof(s->bypass_dst), a);
			copy_field(s->bypass_gw, sizeof(s->bypass_gw), b);
			copy_field(s->bypass_dev, sizeof(s->bypass_dev), c);
		}
	}
	fclose(f);
	return 0;
}

static void state_remove(const struct cl_tunnel_opts *o)
{
	char path[4096];
	state_path(o, "state", path, sizeof(path));
	unlink(path);
	state_path(o, "log", path, sizeof(path));
	unlink(path);
}

/* Only a process that is still the wireguard-go of this interface gets a
 * signal: after a reboot or a crash the pid may belong to anyone. Its
 * command line ends with the interface name (`wireguard-go -f IFNAME`). */
static pid_t live_daemon(pid_t pid, const char *ifname)
{
	char path[64], buf[4096];
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 1)
		return 0;
	buf[n] = '\0';
	buf[n - 1] = '\0'; /* the last argument's own NUL */
	const char *last = memrchr(buf, '\0', (size_t)n - 1);
	last = last ? last + 1 : buf;
	return strcmp(last, ifname) == 0 ? pid : 0;
}

static int select_backend(const char *name, const struct wg_backend **be, struct cl_err *err)
{
	char msg[256] = "";
	if (wg_backend_select(name, be, msg, sizeof(msg)))
		return cl_fail(err, CL_EXIT_TUNNEL, "no usable WireGuard backend (%s): %s", name,
		               *msg ? msg : "unknown error");
	return 0;
}

static bool program_in_path(const char *name)
{
	char path[4096];
	const char *dirs = getenv("PATH");
	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	for (dirs = dirs ? dirs : "/usr/sbin:/usr/bin:/sbin:/bin"; *dirs;) {
		size_t n = strcspn(dirs, ":");
		snprintf(path, sizeof(path), "%.*s/%s", (int)n, dirs, name);
		if (n && access(path, X_OK) == 0)
			return true;
		dirs += n + (dirs[n] == ':');
	}
	return false;
}

int cl_tunnel_check(const struct cl_tunnel_opts *o, struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;

	if (nl_link_index(o->ifname) > 0)
		return cl_fail(err, CL_EXIT_TUNNEL,
		               "interface %s exists already (meshgate down --interface %s, or "
		               "choose another --interface)",
		               o->ifname, o->ifname);
	if (select_backend(o->backend, &be, err))
		return -1;
	if (!strcmp(wg_backend_name(be), "userspace")) {
		const char *program = getenv("MESHGATE_WG_USERSPACE");
		program = program ? program : "wireguard-go";
		if (!program_in_path(program))
			return cl_fail(err, CL_EXIT_TUNNEL,
			               "no WireGuard kernel module and %s not found in PATH",
			               program);
		if (access("/dev/net/tun", R_OK | W_OK))
			return cl_fail(err, CL_EXIT_TUNNEL, "cannot use /dev/net/tun: %s",
			               strerror(errno));
	}
	/* A state file without its interface is left from a crash or a reboot. */
	if (state_load(o, &s) == 0 && !live_daemon(s.pid, o->ifname))
		state_remove(o);
	return 0;
}

/* ---- bring-up ---- */

static int resolve_endpoint(const struct cl_endpoint *e, union wg_endpoint *out, struct cl_err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV}, *res;
	char port[8];
	snprintf(port, sizeof(port), "%u", e->port);
	int rc = getaddrinfo(e->host, port, &hints, &res);
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot resolve the server endpoint %s: %s",
		               e->host, gai_strerror(rc));
	memset(out, 0, sizeof(*out));
	memcpy(out, res->ai_addr, res->ai_addrlen < sizeof(*out) ? res->ai_addrlen : sizeof(*out));
	freeaddrinfo(res);
	return 0;
}

static void to_allowed_ip(const struct cl_prefix *p, struct wg_allowed_ip *out)
{
	memset(out, 0, sizeof(*out));
	out->family = (sa_family_t)p->family;
	if (p->family == AF_INET)
		memcpy(&out->ip4, p->addr, 4);
	else
		memcpy(&out->ip6, p->addr, 16);
	out->cidr = p->len;
}

static void endpoint_prefix(const union wg_endpoint *e, struct cl_prefix *out)
{
	memset(out, 0, sizeof(*out));
	out->family = e->sa.sa_family;
	if (out->family == AF_INET) {
		memcpy(out->addr, &e->in4.sin_addr, 4);
		out->len = 32;
	} else {
		memcpy(out->addr, &e->in6.sin6_addr, 16);
		out->len = 128;
	}
}

/* Creates the interface with wireguard-go's output going to STATE/IFNAME.log:
 * the daemon outlives this process and must not hold its stdout, or a caller
 * reading our output (a pipe, $(...)) would wait for it forever. */
static int create_interface(const struct cl_tunnel_opts *o, const struct wg_backend *be, pid_t *pid,
                            struct cl_err *err)
{
	char path[4096], msg[256] = "";
	state_path(o, "log", path, sizeof(path));
	fflush(stdout);
	fflush(stderr);
	int log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
	if (log >= 0 && saved_out >= 0 && saved_err >= 0) {
		dup2(log, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
	}
	int rc = wg_interface_create(be, o->ifname, 0, pid, msg, sizeof(msg));
	if (saved_out >= 0)
		dup2(saved_out, STDOUT_FILENO), close(saved_out);
	if (saved_err >= 0)
		dup2(saved_err, STDERR_FILENO), close(saved_err);
	if (log >= 0)
		close(log);
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot create %s (%s): %s", o->ifname,
		               wg_backend_name(be), *msg ? msg : strerror(-rc));
	return 0;
}

#define ENDPOINT_FAILED 1

static bool is_default_v4(const struct cl_prefix *p)
{
	return p->family == AF_INET && p->len == 0;
}

/* The server peer's allowed IPs: the profile's, and everything when the
 * device chose a full tunnel. Returns how many. */
static size_t peer_allowed_ips(const struct cl_profile *p, struct wg_allowed_ip ips[PEER_IPS_MAX])
{
	bool have_default = false;
	for (size_t i = 0; i < p->n_allowed_ips; i++) {
		to_allowed_ip(&p->allowed_ips[i], &ips[i]);
		have_default |= is_default_v4(&p->allowed_ips[i]);
	}
	if (!p->full_tunnel || have_default)
		return p->n_allowed_ips;
	memset(&ips[p->n_allowed_ips], 0, sizeof(ips[0]));
	ips[p->n_allowed_ips].family = AF_INET;
	return p->n_allowed_ips + 1;
}

/* What the main table routes through the tunnel: every allowed IP but an
 * IPv4 default route, which a full tunnel routes in its own table. */
static size_t main_table_prefixes(const struct cl_profile *p,
                                  struct cl_prefix out[CL_MAX_ALLOWED_IPS])
{
	size_t n = 0;
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (!is_default_v4(&p->allowed_ips[i]))
			out[n++] = p->allowed_ips[i];
	return n;
}

/* The routes through the interface in the main table (cl_routes_for). */
static size_t main_routes(const struct cl_profile *p, struct cl_prefix out[2 * CL_MAX_ALLOWED_IPS])
{
	struct cl_prefix prefixes[CL_MAX_ALLOWED_IPS];
	size_t n = main_table_prefixes(p, prefixes);
	return cl_routes_for(&p->address, prefixes, n, out);
}

/* The server's peer as the profile has it, its allowed IPs in ips: 0, or
 * ENDPOINT_FAILED with err set. */
static int server_peer(const struct cl_profile *p, struct wg_peer *peer,
                       struct wg_allowed_ip ips[PEER_IPS_MAX], struct cl_err *err)
{
	memset(peer, 0, sizeof(*peer));
	memcpy(peer->public_key, p->server_public_key, WG_KEY_LEN);
	peer->flags = WG_PEER_HAS_KEEPALIVE | WG_PEER_REPLACE_ALLOWED;
	peer->persistent_keepalive = (uint16_t)p->keepalive;
	if (resolve_endpoint(&p->endpoint, &peer->endpoint, err))
		return ENDPOINT_FAILED;
	peer->allowed_ips = ips;
	peer->n_allowed_ips = peer_allowed_ips(p, ips);
	return 0;
}

/* The server of p as the interface's one peer (any other removed): 0, a
 * negative errno of the backend (message in msg), or ENDPOINT_FAILED with
 * err set. */
static int set_server_peer(const struct cl_tunnel_opts *o, const struct wg_backend *be,
                           const struct cl_profile *p, char *msg, size_t msglen, struct cl_err *err)
{
	struct wg_allowed_ip ips[PEER_IPS_MAX];
	struct wg_peer peer;
	if (server_peer(p, &peer, ips, err))
		return ENDPOINT_FAILED;
	return wg_peers_reconcile(be, o->ifname, &peer, 1, NULL, msg, msglen);
}

/* The server's peer removed and made again in one write: a peer whose
 * handshakes went unanswered (the server did not know our key yet) waits
 * 5 s before it tries again; a new one tries at the next packet. */
static int renew_server_peer(const struct cl_tunnel_opts *o, const struct wg_backend *be,
                             const struct cl_profile *p, struct cl_err *err)
{
	struct wg_allowed_ip ips[PEER_IPS_MAX];
	struct wg_peer peers[2] = {{.flags = WG_PEER_REMOVE}};
	struct wg_device dev = {.peers = peers, .n_peers = 2};
	char msg[256] = "";
	if (server_peer(p, &peers[1], ips, err))
		return -1;
	memcpy(peers[0].public_key, p->server_public_key, WG_KEY_LEN);
	snprintf(dev.name, sizeof(dev.name), "%s", o->ifname);
	if (wg_device_set(be, &dev, msg, sizeof(msg)))
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot configure %s: %s", o->ifname, msg);
	return 0;
}

static int configure_wg(const struct cl_tunnel_opts *o, const struct wg_backend *be,
                        const struct cl_profile *p, struct cl_err *err)
{
	char msg[256] = "";
	int rc = wg_device_configure(be, o->ifname, p->private_key, -1, -1, msg, sizeof(msg));
	if (!rc && (rc = set_server_peer(o, be, p, msg, sizeof(msg), err)) == ENDPOINT_FAILED)
		return -1; /* the endpoint: err is set */
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot configure %s: %s", o->ifname,
		               *msg ? msg : strerror(-rc));
	return 0;
}

/* When a route of the tunnel would also catch the packets to the server's
 * endpoint, they would loop into the tunnel: pin the endpoint to the way it
 * goes now, with a host route. */
static int add_bypass(const struct cl_profile *p, const union wg_endpoint *ep,
                      struct tunnel_state *s, struct cl_err *err)
{
	struct cl_prefix host, routed[CL_MAX_ALLOWED_IPS];
	struct nl_route_match via;
	bool caught = false;
	size_t n = main_table_prefixes(p, routed);

	endpoint_prefix(ep, &host);
	for (size_t i = 0; i < n; i++)
		caught |= cl_prefix_covers(&routed[i], &host);
	if (!caught)
		return 0;
	cl_prefix_format(&host, s->bypass_dst, sizeof(s->bypass_dst));
	if (nl_route_lookup(s->bypass_dst, &via)) {
		s->bypass_dst[0] = '\0';
		return cl_fail(err, CL_EXIT_TUNNEL, "no route to the server %s", p->endpoint.host);
	}
	if (via.has_gateway)
		inet_ntop(via.gateway.family, &via.gateway.addr, s->bypass_gw,
		          sizeof(s->bypass_gw));
	snprintf(s->bypass_dev, sizeof(s->bypass_dev), "%s", via.ifname);
	int rc = nl_route_add(s->bypass_dst, s->bypass_dev, *s->bypass_gw ? s->bypass_gw : NULL);
	if (rc == -EEXIST) /* someone's host route to it already: not ours to remove */
		s->bypass_dst[0] = s->bypass_gw[0] = s->bypass_dev[0] = '\0';
	else if (rc) {
		s->bypass_dst[0] = '\0';
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot add a route to the server: %s",
		               strerror(-rc));
	}
	return 0;
}

static int add_route(const char *ifname, const struct cl_prefix *dst, struct cl_err *err)
{
	char text[CL_PREFIX_STRLEN];
	cl_prefix_format(dst, text, sizeof(text));
	int rc = nl_route_add(text, ifname, NULL);
	if (rc == -EEXIST) {
		/* Another interface's route to the same prefix wins; the rest of
		 * the tunnel still works, so say it and go on. */
		fprintf(stderr,
		        "meshgate: warning: a route to %s exists already; not routed "
		        "through %s\n",
		        text, ifname);
		return 0;
	}
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot add the route to %s: %s", text,
		               strerror(-rc));
	return 0;
}

/* A route for each allowed IP, but not for what the address's own prefix
 * already routes; an IPv4 default route is the full tunnel's own table
 * (full_tunnel.h), an IPv6 one becomes two halves (/1), which win over the
 * existing default route without replacing it (cl_routes_for). */
static int add_routes(const char *ifname, const struct cl_profile *p, struct cl_err *err)
{
	struct cl_prefix routes[2 * CL_MAX_ALLOWED_IPS];
	size_t n = main_routes(p, routes);
	for (size_t i = 0; i < n; i++)
		if (add_route(ifname, &routes[i], err))
			return -1;
	return 0;
}

static int configure_link(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                          struct tunnel_state *s, struct cl_err *err)
{
	char addr[CL_PREFIX_STRLEN];
	union wg_endpoint ep;
	cl_prefix_format(&p->address, addr, sizeof(addr));
	int rc = nl_addr_add(o->ifname, addr);
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot add address %s to %s: %s", addr,
		               o->ifname, strerror(-rc));
	rc = nl_link_set_up(o->ifname, true);
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot set %s up: %s", o->ifname,
		               strerror(-rc));
	if (resolve_endpoint(&p->endpoint, &ep, err) || add_bypass(p, &ep, s, err) ||
	    state_save(o, s, err))
		return -1;
	return add_routes(o->ifname, p, err);
}

/* ---- the full tunnel ---- */

bool cl_tunnel_is_full(const struct cl_profile *p)
{
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (is_default_v4(&p->allowed_ips[i]))
			return true;
	return p->full_tunnel;
}

static int set_fwmark(const struct cl_tunnel_opts *o, const struct wg_backend *be,
                      const struct cl_profile *p, uint32_t mark, struct cl_err *err)
{
	char msg[256] = "";
	int rc = wg_device_configure(be, o->ifname, p->private_key, -1, mark, msg, sizeof(msg));
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot set the fwmark of %s: %s", o->ifname,
		               *msg ? msg : strerror(-rc));
	return 0;
}

static void full_tunnel_off(const struct cl_tunnel_opts *o, const struct wg_backend *be,
                            const struct cl_profile *p, struct tunnel_state *s)
{
	cl_full_tunnel_off(o->ifname, &s->full);
	set_fwmark(o, be, p, 0, NULL);
	s->full = (struct cl_full_tunnel){0, -1};
	state_save(o, s, NULL);
}

/* The interface marks its packets and everything else goes through it
 * (full_tunnel.h). The table is in the state file before any rule names
 * it: `down` removes them whenever we stop. */
static int full_tunnel_on(const struct cl_tunnel_opts *o, const struct wg_backend *be,
                          const struct cl_profile *p, struct tunnel_state *s, struct cl_err *err)
{
	s->full.valid_mark_before = -1;
	if (cl_full_tunnel_free_table(&s->full.table, err) || state_save(o, s, err) ||
	    set_fwmark(o, be, p, s->full.table, err) ||
	    cl_full_tunnel_on(o->ifname, &s->full, err) || state_save(o, s, err)) {
		full_tunnel_off(o, be, p, s);
		return -1;
	}
	return 0;
}

uint32_t cl_tunnel_fwmark(const struct cl_tunnel_opts *o)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	struct wg_device *dev = NULL;
	uint32_t mark = 0;
	if (state_load(o, &s) || select_backend(*s.backend ? s.backend : o->backend, &be, NULL))
		return 0;
	if (wg_device_get(be, o->ifname, &dev, NULL, 0) == 0)
		mark = dev->fwmark;
	wg_device_free(dev);
	return mark;
}

int cl_tunnel_up(const struct cl_tunnel_opts *o, const struct cl_profile *p, struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s = {.full = {0, -1}};

	if (select_backend(o->backend, &be, err))
		return -1;
	snprintf(s.backend, sizeof(s.backend), "%s", wg_backend_name(be));
	if (create_interface(o, be, &s.pid, err))
		return -1;
	/* From here on `down` can undo everything, even if we die. */
	if (state_save(o, &s, err) || configure_wg(o, be, p, err) ||
	    configure_link(o, p, &s, err) ||
	    (cl_tunnel_is_full(p) && full_tunnel_on(o, be, p, &s, err))) {
		cl_tunnel_down(o, true, NULL);
		return -1;
	}
	return 0;
}

/* ---- following the networks ---- */

/* Is dst routed through ifname already (the route we would add)? */
static bool routed_here(const char *ifname, const struct cl_prefix *dst)
{
	char text[CL_PREFIX_STRLEN];
	struct nl_route_match via;
	cl_prefix_format(dst, text, sizeof(text));
	return nl_route_lookup(text, &via) == 0 && via.prefix_len == dst->len &&
	       !strcmp(via.ifname, ifname);
}

static int update_routes(const char *ifname, const struct cl_profile *old,
                         const struct cl_profile *p, struct cl_err *err)
{
	struct cl_prefix before[2 * CL_MAX_ALLOWED_IPS], after[2 * CL_MAX_ALLOWED_IPS];
	struct cl_prefix change[2 * CL_MAX_ALLOWED_IPS];
	char text[CL_PREFIX_STRLEN];
	size_t nb = main_routes(old, before), na = main_routes(p, after);

	/* withdrawn first: a narrower or wider prefix may replace one */
	size_t n = cl_prefix_minus(before, nb, after, na, change);
	for (size_t i = 0; i < n; i++) {
		cl_prefix_format(&change[i], text, sizeof(text));
		int rc = nl_route_del(text, ifname, NULL);
		/* gone already (by hand, or it was another interface's): fine */
		if (rc && rc != -ESRCH && rc != -ENOENT && rc != -EADDRNOTAVAIL)
			return cl_fail(err, CL_EXIT_TUNNEL, "cannot remove the route to %s: %s",
			               text, strerror(-rc));
	}
	n = cl_prefix_minus(after, na, before, nb, change);
	for (size_t i = 0; i < n; i++)
		if (!routed_here(ifname, &change[i]) && add_route(ifname, &change[i], err))
			return -1;
	return 0;
}

bool cl_tunnel_is_up(const struct cl_tunnel_opts *o)
{
	struct tunnel_state s;
	return state_load(o, &s) == 0 && nl_link_index(o->ifname) > 0;
}

int cl_tunnel_update(const struct cl_tunnel_opts *o, const struct cl_profile *old,
                     const struct cl_profile *p, struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	struct wg_device *dev = NULL;
	struct wg_allowed_ip ips[PEER_IPS_MAX];
	struct wg_peer peer = {0};
	char msg[256] = "";

	if (state_load(o, &s) || nl_link_index(o->ifname) <= 0)
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up (meshgate up --interface %s)",
		               o->ifname, o->ifname);
	if (select_backend(*s.backend ? s.backend : o->backend, &be, err))
		return -1;
	int rc = wg_device_get(be, o->ifname, &dev, msg, sizeof(msg));
	bool have_peer = rc == 0 && wg_device_find_peer(dev, p->server_public_key);
	wg_device_free(dev);
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot read %s: %s", o->ifname,
		               *msg ? msg : strerror(-rc));
	if (!have_peer)
		return cl_fail(err, CL_EXIT_TUNNEL, "%s has no peer for the server's key",
		               o->ifname);

	/* The one peer's allowed IPs, replaced in place: the session, its
	 * endpoint and keepalive stay as they are (no new handshake). */
	memcpy(peer.public_key, p->server_public_key, WG_KEY_LEN);
	peer.flags = WG_PEER_UPDATE_ONLY;
	peer.allowed_ips = ips;
	peer.n_allowed_ips = peer_allowed_ips(p, ips);
	if ((rc = wg_peers_upsert(be, o->ifname, &peer, 1, msg, sizeof(msg))))
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot update %s's peer: %s", o->ifname,
		               *msg ? msg : strerror(-rc));
	if (update_routes(o->ifname, old, p, err))
		return -1;
	/* the gateway gave the role a full tunnel, or took it back */
	if (cl_tunnel_is_full(p) && !s.full.table && full_tunnel_on(o, be, p, &s, err))
		return -1;
	if (!cl_tunnel_is_full(p) && s.full.table)
		full_tunnel_off(o, be, p, &s);
	/* a network now routed through the tunnel may hold the endpoint */
	if (!*s.bypass_dst) {
		union wg_endpoint ep;
		if (resolve_endpoint(&p->endpoint, &ep, err) || add_bypass(p, &ep, &s, err))
			return -1;
		if (*s.bypass_dst && state_save(o, &s, err))
			return -1;
	}
	return 0;
}

/* ---- handshake ---- */

static bool routed_inside(const struct cl_profile *p, const struct cl_prefix *host)
{
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (cl_prefix_covers(&p->allowed_ips[i], host))
			return true;
	return false;
}

/* An address inside the tunnel other than ours: a DNS server the gateway
 * gave (usually the gateway itself), else the first host of the first
 * allowed prefix, else (a full tunnel) the neighbour of our own address. */
static bool nudge_target(const struct cl_profile *p, struct cl_prefix *out)
{
	for (size_t i = 0; i < p->n_dns; i++)
		if (cl_prefix_parse(p->dns[i], false, out) == 0 && routed_inside(p, out))
			return true;
	for (size_t i = 0; i < p->n_allowed_ips; i++) {
		struct cl_prefix t = p->allowed_ips[i];
		unsigned last = t.family == AF_INET ? 3 : 15;
		if (t.len == 0)
			continue;
		if (t.len < (t.family == AF_INET ? 31 : 127))
			t.addr[last] |= 1;
		if (t.family == p->address.family &&
		    !memcmp(t.addr, p->address.addr, sizeof(t.addr)))
			t.addr[last] ^= 3; /* .1 is us: take .2 */
		*out = t;
		return true;
	}
	*out = p->address;
	out->len = out->family == AF_INET ? 32 : 128;
	out->addr[out->family == AF_INET ? 3 : 15] ^= 1;
	return routed_inside(p, out);
}

/* A packet into the tunnel makes WireGuard start a handshake at once,
 * whether or not the server asked for keepalives. */
static void nudge(const char *ifname, const struct cl_prefix *target)
{
	union wg_endpoint to = {0};
	socklen_t len;
	if (target->family == AF_INET) {
		to.in4.sin_family = AF_INET;
		to.in4.sin_port = htons(9); /* discard */
		memcpy(&to.in4.sin_addr, target->addr, 4);
		len = sizeof(to.in4);
	} else {
		to.in6.sin6_family = AF_INET6;
		to.in6.sin6_port = htons(9);
		memcpy(&to.in6.sin6_addr, target->addr, 16);
		len = sizeof(to.in6);
	}
	int fd = socket(target->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname));
	sendto(fd, "meshgate", 8, 0, &to.sa, len);
	close(fd);
}

static int peer_handshake(const struct wg_backend *be, const char *ifname,
                          const uint8_t key[CL_KEY_LEN], bool *done)
{
	struct wg_device *dev = NULL;
	int rc = wg_device_get(be, ifname, &dev, NULL, 0);
	if (rc == 0) {
		const struct wg_peer *peer = wg_device_find_peer(dev, key);
		*done = peer && (peer->last_handshake.tv_sec || peer->last_handshake.tv_nsec);
	}
	wg_device_free(dev);
	return rc;
}

int cl_tunnel_wait_handshake(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                             int timeout_s, volatile sig_atomic_t *stop, long *waited_ms,
                             struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	struct cl_prefix target;
	bool have_target = nudge_target(p, &target), done = false;
	long long start = cl_mono_ms(), last_nudge = start - NUDGE_MS, last_renew = start;

	if (state_load(o, &s) || select_backend(s.backend, &be, err))
		return cl_fail(err, CL_EXIT_TUNNEL, "%s vanished", o->ifname);
	/* A handshake tried before the server knew our key (register, or
	 * the gateway's peer written a moment after its answer) makes
	 * WireGuard back off for 5 s; a fresh peer starts over at once. */
	if (configure_wg(o, be, p, err) || renew_server_peer(o, be, p, err))
		return -1;
	while (!done) {
		long long now = cl_mono_ms();
		if (stop && *stop)
			return cl_fail(err, CL_EXIT_TUNNEL, "interrupted");
		if (now - start >= timeout_s * 1000L)
			return cl_fail(err, CL_EXIT_TUNNEL,
			               "no handshake with the server within %d s (is UDP to %s:%u "
			               "blocked?)",
			               timeout_s, p->endpoint.host, p->endpoint.port);
		if (now - last_renew >= RENEW_MS) {
			if (renew_server_peer(o, be, p, err))
				return -1;
			last_renew = now;
			last_nudge = now - NUDGE_MS; /* the new peer's first packet */
		}
		if (have_target && now - last_nudge >= NUDGE_MS) {
			nudge(o->ifname, &target);
			last_nudge = now;
		}
		int rc = peer_handshake(be, o->ifname, p->server_public_key, &done);
		if (rc)
			return cl_fail(err, CL_EXIT_TUNNEL, "cannot read %s: %s", o->ifname,
			               strerror(-rc));
		if (!done)
			nanosleep(&(struct timespec){.tv_nsec = POLL_MS * 1000000L}, NULL);
	}
	*waited_ms = (long)(cl_mono_ms() - start);
	return 0;
}

int cl_tunnel_switch(const struct cl_tunnel_opts *o, const struct cl_profile *p, struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	char msg[256] = "";
	if (state_load(o, &s) || select_backend(*s.backend ? s.backend : o->backend, &be, err))
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up", o->ifname);
	/* the same allowed IPs as the peer it replaces, as they are now (the
	 * profile's when the interface has no single peer) */
	struct wg_allowed_ip ips[PEER_IPS_MAX];
	struct wg_device *dev = NULL;
	struct wg_peer peer;
	int rc = server_peer(p, &peer, ips, err);
	if (!rc && !wg_device_get(be, o->ifname, &dev, msg, sizeof(msg)) && dev->n_peers == 1) {
		peer.allowed_ips = dev->peers[0].allowed_ips;
		peer.n_allowed_ips = dev->peers[0].n_allowed_ips;
	}
	msg[0] = '\0';
	if (!rc)
		rc = wg_peers_reconcile(be, o->ifname, &peer, 1, NULL, msg, sizeof(msg));
	wg_device_free(dev);
	if (rc == ENDPOINT_FAILED)
		return -1;
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot set %s's peer: %s", o->ifname,
		               *msg ? msg : strerror(-rc));
	return 0;
}

int cl_tunnel_renew_peer(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                         struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	if (state_load(o, &s) || select_backend(*s.backend ? s.backend : o->backend, &be, err))
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up", o->ifname);
	return renew_server_peer(o, be, p, err);
}

/* Whether WireGuard still sends to p's endpoint: it follows a peer that
 * answers from another address (roaming), and a packet of the gateway's
 * still on its way from an uplink just left takes it back there. 1 kept,
 * 0 roamed, negative unknown. */
int cl_tunnel_endpoint_kept(const struct cl_tunnel_opts *o, const struct cl_profile *p)
{
	struct tunnel_state s;
	const struct wg_backend *be;
	struct wg_device *dev = NULL;
	union wg_endpoint want;
	struct cl_err err = {0};
	if (state_load(o, &s) || select_backend(*s.backend ? s.backend : o->backend, &be, &err) ||
	    resolve_endpoint(&p->endpoint, &want, &err))
		return -1;
	int kept = -1;
	if (!wg_device_get(be, o->ifname, &dev, NULL, 0)) {
		const struct wg_peer *peer = wg_device_find_peer(dev, p->server_public_key);
		kept = peer ? wg_endpoint_equal(&peer->endpoint, &want) : -1;
	}
	wg_device_free(dev);
	return kept;
}

/* ---- a key rotation ---- */

int cl_tunnel_set_key(const struct cl_tunnel_opts *o, const uint8_t key[CL_KEY_LEN],
                      struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	char msg[256] = "";
	if (state_load(o, &s) || select_backend(*s.backend ? s.backend : o->backend, &be, err))
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up", o->ifname);
	int rc = wg_device_configure(be, o->ifname, key, -1, -1, msg, sizeof(msg));
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot set the private key of %s: %s",
		               o->ifname, *msg ? msg : strerror(-rc));
	return 0;
}

int cl_tunnel_last_handshake(const struct cl_tunnel_opts *o, const uint8_t peer_key[CL_KEY_LEN],
                             struct timespec *at, struct cl_err *err)
{
	uint64_t rx_bytes;
	return cl_tunnel_peer_heard(o, peer_key, at, &rx_bytes, err);
}

int cl_tunnel_peer_heard(const struct cl_tunnel_opts *o, const uint8_t peer_key[CL_KEY_LEN],
                         struct timespec *at, uint64_t *rx_bytes, struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	struct wg_device *dev = NULL;
	char msg[256] = "";
	*at = (struct timespec){0};
	*rx_bytes = 0;
	if (state_load(o, &s) || select_backend(*s.backend ? s.backend : o->backend, &be, err))
		return cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up", o->ifname);
	int rc = wg_device_get(be, o->ifname, &dev, msg, sizeof(msg));
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot read %s: %s", o->ifname,
		               *msg ? msg : strerror(-rc));
	const struct wg_peer *peer = wg_device_find_peer(dev, peer_key);
	if (peer) {
		*at = peer->last_handshake;
		*rx_bytes = peer->rx_bytes;
	}
	wg_device_free(dev);
	return 0;
}

/* ---- teardown ---- */

int cl_tunnel_down(const struct cl_tunnel_opts *o, bool missing_ok, struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	char msg[256] = "";
	bool have_state = state_load(o, &s) == 0;
	bool have_link = nl_link_index(o->ifname) > 0;

	if (!have_state) {
		if (have_link)
			return cl_fail(err, CL_EXIT_NOT_FOUND,
			               "%s was not brought up by meshgate (no %s/%s.state): not "
			               "touching it",
			               o->ifname, o->state_dir, o->ifname);
		return missing_ok ? 0 : cl_fail(err, CL_EXIT_NOT_FOUND, "%s is not up", o->ifname);
	}
	if (*s.bypass_dst)
		nl_route_del(s.bypass_dst, s.bypass_dev, *s.bypass_gw ? s.bypass_gw : NULL);
	cl_full_tunnel_off(o->ifname, &s.full);
	/* The tunnel's own routes go with its link. */
	pid_t pid = live_daemon(s.pid, o->ifname);
	if (have_link || pid) {
		if (select_backend(*s.backend ? s.backend : "auto", &be, err))
			return -1;
		int rc = wg_interface_delete(be, o->ifname, pid, msg, sizeof(msg));
		if (rc && rc != -ENODEV && nl_link_index(o->ifname) > 0)
			return cl_fail(err, CL_EXIT_FAILURE, "cannot remove %s: %s", o->ifname,
			               *msg ? msg : strerror(-rc));
	}
	state_remove(o);
	return 0;
}

/* ---- status ---- */

static void format_endpoint(const union wg_endpoint *e, char *buf, size_t size)
{
	char addr[INET6_ADDRSTRLEN] = "";
	buf[0] = '\0';
	if (e->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &e->in4.sin_addr, addr, sizeof(addr));
		snprintf(buf, size, "%s:%u", addr, ntohs(e->in4.sin_port));
	} else if (e->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &e->in6.sin6_addr, addr, sizeof(addr));
		snprintf(buf, size, "[%s]:%u", addr, ntohs(e->in6.sin6_port));
	}
}

int cl_tunnel_status(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                     struct cl_tunnel_status *st, struct cl_err *err)
{
	const struct wg_backend *be;
	struct tunnel_state s;
	struct wg_device *dev = NULL;
	char msg[256] = "";

	memset(st, 0, sizeof(*st));
	st->up = nl_link_index(o->ifname) > 0;
	if (!st->up)
		return 0;
	if (state_load(o, &s) == 0) {
		snprintf(st->backend, sizeof(st->backend), "%s", s.backend);
		st->pid = live_daemon(s.pid, o->ifname);
	}
	if (select_backend(*st->backend ? st->backend : o->backend, &be, err))
		return -1;
	snprintf(st->backend, sizeof(st->backend), "%s", wg_backend_name(be));
	int rc = wg_device_get(be, o->ifname, &dev, msg, sizeof(msg));
	if (rc)
		return cl_fail(err, CL_EXIT_FAILURE, "cannot read %s: %s", o->ifname,
		               *msg ? msg : strerror(-rc));
	memcpy(st->public_key, dev->public_key, WG_KEY_LEN);
	const struct wg_peer *peer = p ? wg_device_find_peer(dev, p->server_public_key)
	                               : (dev->n_peers ? &dev->peers[0] : NULL);
	if (peer) {
		st->have_peer = true;
		format_endpoint(&peer->endpoint, st->endpoint, sizeof(st->endpoint));
		st->last_handshake = peer->last_handshake.tv_sec;
		st->rx_bytes = peer->rx_bytes;
		st->tx_bytes = peer->tx_bytes;
	}
	wg_device_free(dev);
	return 0;
}
