#include "pmtu.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "clock.h"
#include "nl.h"
#include "probe.h"

/* The size every IPv4 and IPv6 path carries (IPv6's minimum link MTU):
 * where a search starts when the largest size fails, and where the MTU
 * drops when the size in use stops passing. */
#define BASE_SIZE   1280
#define PMTU_TRIES  3   /* unanswered probes of a size before it is too big */
#define TRY_MIN_MS  250 /* a try's wait, plus twice the last answer's RTT */
#define CONFIRM_MS  2000
#define ROUTE_MS    1000
#define RAISE_MS    (10 * 60 * 1000)
#define RETRY_MS    10000 /* after a search that got no answer at all */
#define OVERHEAD_V4 60    /* IPv4 20 + UDP 8 + WireGuard 32 */
#define OVERHEAD_V6 80
#define HEADER_V4   28 /* of a probe: IPv4 + UDP */
#define HEADER_V6   48

enum pmtu_state { PM_OFF, PM_SEARCHING, PM_DONE, PM_BLACK_HOLE, PM_FIXED };

static const char *const state_names[] = {"off", "searching", "done", "black-hole", "fixed"};

struct cl_pmtu {
	const struct cl_tunnel_opts *tun;
	unsigned fixed;
	/* the target */
	struct cl_endpoint endpoint;
	unsigned port;
	int fd, family;
	struct sockaddr_storage to; /* the endpoint's address, at port */
	socklen_t tolen;
	char address[INET6_ADDRSTRLEN];
	uint32_t fwmark;
	char route[128];   /* the way to the endpoint: interface, gateway, source */
	unsigned link_max; /* the MTU of the interface it leaves by */
	/* the search */
	enum pmtu_state state;
	unsigned good, bad; /* largest size answered, smallest too big (link_max + 1) */
	unsigned hint;      /* an ICMP "too big"'s MTU: the next size to try */
	unsigned trying;    /* the size on trial, 0 none */
	bool confirming;    /* the trial confirms the size in use */
	int tries;
	uint64_t nonces[PMTU_TRIES];
	long long sent_at, first_sent, next_at; /* monotonic ms */
	long rtt_ms;
	unsigned probes; /* sent in this search */
	/* the result */
	unsigned path; /* the size found, 0 none */
	unsigned mtu;  /* the tunnel's, as set or read */
	long long at;  /* unix ms the path was found */
	long long next_confirm, next_raise, next_route;
	char why[160]; /* why the last search started */
};

static long long raise_ms(void)
{
	const char *env = getenv("MESHGATE_PMTU_RAISE_MS");
	long long v = env ? atoll(env) : 0;
	return v > 0 ? v : RAISE_MS;
}

static unsigned link_mtu(const char *ifname)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	int rc = ioctl(fd, SIOCGIFMTU, &ifr);
	close(fd);
	return rc ? 0 : (unsigned)ifr.ifr_mtu;
}

struct cl_pmtu *cl_pmtu_new(const struct cl_tunnel_opts *tun, unsigned fixed_mtu)
{
	struct cl_pmtu *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->tun = tun;
	m->fd = -1;
	m->fixed = fixed_mtu;
	m->state = fixed_mtu ? PM_FIXED : PM_OFF;
	m->mtu = fixed_mtu ? fixed_mtu : link_mtu(tun->ifname);
	if (fixed_mtu)
		nl_link_set_mtu(tun->ifname, fixed_mtu); /* `up` set it; a restart keeps it */
	return m;
}

static void close_socket(struct cl_pmtu *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

void cl_pmtu_free(struct cl_pmtu *m)
{
	if (!m)
		return;
	close_socket(m);
	free(m);
}

/* ---- the socket ---- */

static int resolve(const struct cl_endpoint *e, unsigned port, struct sockaddr_storage *to,
                   socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV}, *res;
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	if (getaddrinfo(e->host, service, &hints, &res))
		return -1;
	memcpy(to, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* A UDP socket towards the endpoint that sets DF on every datagram and
 * ignores what the kernel learnt of the path (IP_PMTUDISC_PROBE: the
 * probes are what learns it), with ICMP errors on its error queue. */
static int open_socket(struct cl_pmtu *m)
{
	struct sockaddr_storage to;
	socklen_t len;
	int one = 1;
	close_socket(m);
	if (resolve(&m->endpoint, m->port, &to, &len))
		return -1;
	m->to = to;
	m->tolen = len;
	inet_ntop(to.ss_family,
	          to.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&to)->sin_addr
	                                  : (void *)&((struct sockaddr_in6 *)&to)->sin6_addr,
	          m->address, sizeof(m->address));
	int fd = socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int v4 = to.ss_family == AF_INET, pmtud = v4 ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE;
	int rc = setsockopt(fd, v4 ? IPPROTO_IP : IPPROTO_IPV6,
	                    v4 ? IP_MTU_DISCOVER : IPV6_MTU_DISCOVER, &pmtud, sizeof(pmtud));
	if (!rc)
		rc = setsockopt(fd, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_RECVERR : IPV6_RECVERR,
		                &one, sizeof(one));
	m->fwmark = cl_tunnel_fwmark(m->tun);
	if (!rc && m->fwmark)
		rc = setsockopt(fd, SOL_SOCKET, SO_MARK, &m->fwmark, sizeof(m->fwmark));
	if (rc || connect(fd, (struct sockaddr *)&to, len)) {
		fprintf(stderr, "meshgate: %s: no path MTU discovery towards %s: %s\n",
		        m->tun->ifname, m->endpoint.host, strerror(errno));
		close(fd);
		return -1;
	}
	m->fd = fd;
	m->family = to.ss_family;
	return 0;
}

/* The way to the endpoint now: the interface, the next hop and our source
 * address; and that interface's MTU, the largest size worth a probe. */
static void current_route(const struct cl_pmtu *m, char *route, size_t size, unsigned *max)
{
	struct nl_route_match via;
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char gw[INET6_ADDRSTRLEN] = "-", src[INET6_ADDRSTRLEN] = "-";
	snprintf(route, size, "none");
	*max = 0;
	if (m->fd < 0 || nl_route_lookup(m->address, &via))
		return;
	if (via.has_gateway)
		inet_ntop(via.gateway.family, &via.gateway.addr, gw, sizeof(gw));
	/* a socket of the moment: the connected one keeps its first source */
	int fd = socket(m->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && m->fwmark)
		setsockopt(fd, SOL_SOCKET, SO_MARK, &m->fwmark, sizeof(m->fwmark));
	if (fd >= 0 && !connect(fd, (struct sockaddr *)&m->to, m->tolen) &&
	    !getsockname(fd, (struct sockaddr *)&local, &len))
		inet_ntop(local.ss_family,
		          local.ss_family == AF_INET
		              ? (void *)&((struct sockaddr_in *)&local)->sin_addr
		              : (void *)&((struct sockaddr_in6 *)&local)->sin6_addr,
		          src, sizeof(src));
	if (fd >= 0)
		close(fd);
	*max = link_mtu(via.ifname);
	if (*max > PMTU_PROBE_MAX + (m->family == AF_INET ? HEADER_V4 : HEADER_V6))
		*max = PMTU_PROBE_MAX + (m->family == AF_INET ? HEADER_V4 : HEADER_V6);
	snprintf(route, size, "%s via %s from %s", via.ifname, gw, src);
}

/* ---- the MTU ---- */

/* The tunnel MTU for a path of `size`: WireGuard's overhead off, and down
 * to a multiple of 16, since WireGuard pads each packet to one, up to the
 * sender's MTU: the gateway's interface (1420, say) would pad a packet of
 * our MTU past what the path carries. */
static unsigned tunnel_mtu(const struct cl_pmtu *m, unsigned size)
{
	return (size - (m->family == AF_INET6 ? OVERHEAD_V6 : OVERHEAD_V4)) / 16 * 16;
}

static void set_mtu(struct cl_pmtu *m, unsigned mtu, const char *what)
{
	if (mtu == m->mtu && mtu == link_mtu(m->tun->ifname))
		return;
	int rc = nl_link_set_mtu(m->tun->ifname, mtu);
	if (rc) {
		fprintf(stderr, "meshgate: %s: cannot set the MTU to %u: %s\n", m->tun->ifname, mtu,
		        strerror(-rc));
		return;
	}
	printf("meshgate: %s: MTU %u (%s)\n", m->tun->ifname, mtu, what);
	fflush(stdout);
	m->mtu = mtu;
}

/* ---- the search ---- */

static void start_search(struct cl_pmtu *m, bool raise, const char *why)
{
	if (m->state == PM_FIXED || m->state == PM_OFF)
		return;
	snprintf(m->why, sizeof(m->why), "%s", why);
	m->state = PM_SEARCHING;
	m->good = raise ? m->path : 0;
	m->bad = m->link_max + 1;
	m->hint = 0;
	m->trying = 0;
	m->confirming = false;
	m->probes = 0;
	m->next_at = 0;
}

static void finish(struct cl_pmtu *m)
{
	long long now = cl_mono_ms();
	m->trying = 0;
	m->next_confirm = now + CONFIRM_MS;
	if (!m->good) {
		/* not even the base size came back: no responder, or a path
		 * that carries nothing; the MTU stays as it is */
		m->state = PM_BLACK_HOLE;
		m->next_raise = now + (raise_ms() < RETRY_MS ? raise_ms() : RETRY_MS);
		printf("meshgate: %s: no answer to size probes from %s:%u (%u sent): the MTU "
		       "stays %u\n",
		       m->tun->ifname, m->endpoint.host, m->port, m->probes, m->mtu);
		fflush(stdout);
		return;
	}
	char what[320];
	bool changed = m->good != m->path;
	m->state = PM_DONE;
	m->path = m->good;
	m->at = cl_unix_ms();
	m->next_raise = now + raise_ms();
	snprintf(what, sizeof(what), "path MTU %u to %s, found with %u probes: %s", m->path,
	         m->endpoint.host, m->probes, m->why);
	if (changed || m->mtu != tunnel_mtu(m, m->path))
		set_mtu(m, tunnel_mtu(m, m->path), what);
}

/* The next size to try, or 0 when the search is over. */
static unsigned next_size(struct cl_pmtu *m)
{
	unsigned base = BASE_SIZE < m->link_max ? BASE_SIZE : m->link_max;
	if (m->hint > m->good && m->hint < m->bad) {
		unsigned h = m->hint;
		m->hint = 0;
		return h;
	}
	if (m->bad > m->link_max && m->good < m->link_max)
		return m->link_max; /* first the largest: on a clean path, done */
	if (!m->good)
		return m->bad > base ? base : 0;
	return m->bad - m->good > 1 ? (m->good + m->bad) / 2 : 0;
}

static void send_try(struct cl_pmtu *m)
{
	unsigned header = m->family == AF_INET ? HEADER_V4 : HEADER_V6;
	size_t len = m->trying - header;
	uint8_t *buf = malloc(len);
	uint64_t nonce;
	if (!buf)
		return;
	randombytes_buf(&nonce, sizeof(nonce));
	m->nonces[m->tries % PMTU_TRIES] = nonce;
	pmtu_probe_encode(PMTU_PROBE, nonce, len, buf);
	ssize_t n = send(m->fd, buf, len, MSG_DONTWAIT);
	free(buf);
	m->tries++;
	m->probes++;
	m->sent_at = cl_mono_ms();
	if (m->tries == 1)
		m->first_sent = m->sent_at;
	m->next_at = m->sent_at + TRY_MIN_MS + 2 * m->rtt_ms;
	if (n < 0 && errno == EMSGSIZE) {
		m->tries = PMTU_TRIES; /* larger than our own link: too big, no wait */
		m->next_at = m->sent_at;
	}
}

static void on_black_hole(struct cl_pmtu *m)
{
	char why[160];
	snprintf(why, sizeof(why), "probes of %u bytes went unanswered while the tunnel's pass",
	         m->path);
	/* RFC 8899's black hole: back to the base at once, then search up */
	set_mtu(m, tunnel_mtu(m, BASE_SIZE), why);
	m->path = 0;
	start_search(m, false, why);
}

/* A trial that got no answer after its tries. */
static void trial_failed(struct cl_pmtu *m, bool tunnel_ok)
{
	unsigned size = m->trying;
	m->trying = 0;
	if (m->confirming) {
		m->confirming = false;
		m->next_confirm = cl_mono_ms() + CONFIRM_MS;
		/* the gateway unreachable altogether is failover's business */
		if (tunnel_ok)
			on_black_hole(m);
		return;
	}
	if (size < m->bad)
		m->bad = size;
}

static void trial_passed(struct cl_pmtu *m)
{
	if (m->confirming) {
		m->confirming = false;
		m->next_confirm = cl_mono_ms() + CONFIRM_MS;
	} else if (m->trying > m->good) {
		m->good = m->trying;
	}
	m->trying = 0;
	m->next_at = 0;
}

static void check_route(struct cl_pmtu *m)
{
	char route[128], why[300];
	unsigned max;
	current_route(m, route, sizeof(route), &max);
	if (!strcmp(route, m->route) && max == m->link_max)
		return;
	snprintf(why, sizeof(why), "the way to %s is now %s (was %s), MTU %u", m->endpoint.host,
	         route, *m->route ? m->route : "unknown", max);
	bool first = !*m->route;
	snprintf(m->route, sizeof(m->route), "%s", route);
	m->link_max = max;
	if (!max)
		return; /* no route: nothing to probe until there is one */
	if (!first || m->state != PM_SEARCHING)
		start_search(m, false, why);
	m->bad = max + 1;
}

void cl_pmtu_tick(struct cl_pmtu *m, bool tunnel_ok)
{
	long long now = cl_mono_ms();
	if (m->state == PM_OFF || m->state == PM_FIXED || m->fd < 0)
		return;
	if (now >= m->next_route) {
		m->next_route = now + ROUTE_MS;
		check_route(m);
	}
	if (!m->link_max)
		return;
	if (m->trying && now >= m->next_at) {
		if (m->tries < PMTU_TRIES)
			send_try(m);
		else
			trial_failed(m, tunnel_ok);
	}
	if (m->trying)
		return;
	switch (m->state) {
	case PM_SEARCHING:
		m->trying = next_size(m);
		m->tries = 0;
		if (m->trying)
			send_try(m);
		else
			finish(m);
		break;
	case PM_DONE:
		if (now >= m->next_raise && m->path < m->link_max) {
			start_search(m, true, "the raise timer: trying for more");
		} else if (now >= m->next_raise) {
			m->next_raise = now + raise_ms();
		} else if (now >= m->next_confirm) {
			m->trying = m->path;
			m->confirming = true;
			m->tries = 0;
			send_try(m);
		}
		break;
	case PM_BLACK_HOLE:
		if (now >= m->next_raise)
			start_search(m, false, "trying again");
		break;
	default:
		break;
	}
}

/* ---- input ---- */

static void on_answer(struct cl_pmtu *m, const uint8_t *buf, size_t len)
{
	enum pmtu_probe_type type;
	uint64_t nonce;
	unsigned header = m->family == AF_INET ? HEADER_V4 : HEADER_V6;
	if (!m->trying || pmtu_probe_decode(buf, len, &type, &nonce) || type != PMTU_ANSWER ||
	    len + header != m->trying)
		return; /* not an answer to the trial: changes nothing */
	for (int i = 0; i < PMTU_TRIES && i < m->tries; i++)
		if (m->nonces[i] == nonce) {
			m->rtt_ms = (long)(cl_mono_ms() - m->sent_at);
			if (m->rtt_ms > 2000)
				m->rtt_ms = 2000;
			trial_passed(m);
			return;
		}
}

/* An ICMP "too big" (or our own link's EMSGSIZE): its MTU is the next size
 * worth a try, never a result; it ends the trial of a larger size. */
static void read_errors(struct cl_pmtu *m)
{
	for (;;) {
		char control[512];
		uint8_t data[64];
		struct iovec iov = {data, sizeof(data)};
		struct msghdr msg = {.msg_iov = &iov,
		                     .msg_iovlen = 1,
		                     .msg_control = control,
		                     .msg_controllen = sizeof(control)};
		if (recvmsg(m->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (!((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
			      (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)))
				continue;
			const struct sock_extended_err *ee = (const void *)CMSG_DATA(c);
			if (ee->ee_errno != EMSGSIZE || !ee->ee_info)
				continue;
			m->hint = ee->ee_info;
			if (m->trying > ee->ee_info && !m->confirming && m->trying < m->bad) {
				m->bad = m->trying;
				m->trying = 0;
			}
		}
	}
}

void cl_pmtu_read(struct cl_pmtu *m)
{
	uint8_t *buf = malloc(PMTU_PROBE_MAX + 1);
	if (!buf || m->fd < 0) {
		free(buf);
		return;
	}
	for (;;) {
		ssize_t n = recv(m->fd, buf, PMTU_PROBE_MAX + 1, MSG_DONTWAIT);
		if (n >= 0)
			on_answer(m, buf, (size_t)n);
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		/* else an error (ICMP unreachable, too big) queued: read below */
		read_errors(m);
		if (n < 0 && errno != EMSGSIZE && errno != ECONNREFUSED && errno != EHOSTUNREACH &&
		    errno != ENETUNREACH)
			break;
	}
	read_errors(m);
	free(buf);
}

/* ---- the agent's side ---- */

void cl_pmtu_target(struct cl_pmtu *m, const struct cl_endpoint *endpoint, unsigned port,
                    const char *why)
{
	char text[300];
	if (m->state == PM_FIXED)
		return;
	if (m->port == port && !strcmp(m->endpoint.host, endpoint->host) && (m->fd >= 0 || !port))
		return;
	m->endpoint = *endpoint;
	m->port = port;
	m->route[0] = '\0';
	m->link_max = 0;
	m->next_route = 0;
	m->path = 0;
	m->at = 0;
	m->rtt_ms = 0;
	if (!port || open_socket(m)) {
		close_socket(m);
		m->state = PM_OFF;
		return;
	}
	m->state = PM_SEARCHING;
	snprintf(text, sizeof(text), "%s (%s)", why, endpoint->host);
	start_search(m, false, text);
}

int cl_pmtu_fd(const struct cl_pmtu *m)
{
	return m->fd;
}

bool cl_pmtu_first_search(const struct cl_pmtu *m)
{
	return m->state == PM_SEARCHING && !m->path && m->link_max;
}

unsigned cl_pmtu_told(const struct cl_pmtu *m)
{
	/* a gateway that tells a pmtu_port takes the MTU in its probes */
	return m->port && (m->state != PM_SEARCHING || m->path) ? m->mtu : 0;
}

json_t *cl_pmtu_status(const struct cl_pmtu *m)
{
	json_t *st = json_pack("{s:i, s:s}", "mtu", (int)m->mtu, "state", state_names[m->state]);
	if (m->path)
		json_object_set_new(st, "path", json_integer(m->path));
	json_object_set_new(st, "at", m->at ? json_integer(m->at) : json_null());
	if (*m->why)
		json_object_set_new(st, "why", json_string(m->why));
	if (m->state == PM_SEARCHING && m->trying)
		json_object_set_new(st, "trying", json_integer(m->trying));
	return st;
}
