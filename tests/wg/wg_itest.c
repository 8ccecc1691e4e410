/*
 * Integration driver: two network namespaces (made by wg_integration.sh,
 * joined by a veth pair), a wireguard-go in each started through lib/wg,
 * addresses and links through lib/netlink, real pings through the tunnel.
 *
 *   wg_itest NS_A NS_B VETH_A VETH_B
 *
 * The daemons are our children, stopped on every exit path; they also get
 * SIGTERM if this process dies (WG_CREATE_DIE_WITH_PARENT). Prints TAP-like
 * lines; exits 1 if any check failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nl.h"
#include "wg.h"
#include "wg_uapi.h"

#define MANY 1000

struct side {
	const char *ns, *veth, *underlay, *tunnel, *tunnel_host;
	int nsfd;
	char ifname[IF_NAMESIZE];
	pid_t pid;
	wg_key priv, pub;
	struct wg_allowed_ip ip; /* its tunnel address, as the other's peer */
	struct wg_peer as_peer;  /* how the other side sees it */
};

static const struct wg_backend *be;
static struct side sides[2];
static int failures;
static char err[256];

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!ok && err[0])
		printf(" [%s]", err);
	printf("\n");
	fflush(stdout);
	failures += !ok;
	err[0] = '\0';
}

static void stop_daemons(void)
{
	for (int i = 0; i < 2; i++)
		if (sides[i].pid > 0) {
			wg_interface_delete(be, sides[i].ifname, sides[i].pid, NULL, 0);
			sides[i].pid = 0;
		}
}

static void on_signal(int sig)
{
	/* async-signal-safe only: the daemons also get SIGTERM by PDEATHSIG */
	for (int i = 0; i < 2; i++)
		if (sides[i].pid > 0)
			kill(sides[i].pid, SIGTERM);
	_exit(128 + sig);
}

static int enter(const struct side *s)
{
	return setns(s->nsfd, CLONE_NEWNET);
}

static int ping(const struct side *from, const char *addr, int wait_s)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ip netns exec %s ping -c1 -W%d %s >/dev/null 2>&1", from->ns,
	         wait_s, addr);
	return system(cmd);
}

static bool same_ip(const struct wg_allowed_ip *a, const struct wg_allowed_ip *b)
{
	return a->family == b->family && a->cidr == b->cidr &&
	       !memcmp(&a->ip6, &b->ip6, a->family == AF_INET ? 4 : 16);
}

static bool same_ips(const struct wg_peer *a, const struct wg_peer *b)
{
	if (a->n_allowed_ips != b->n_allowed_ips)
		return false;
	for (size_t i = 0; i < a->n_allowed_ips; i++)
		if (!same_ip(&a->allowed_ips[i], &b->allowed_ips[i]))
			return false;
	return true;
}

/* Every peer of want is on dev with the same allowed IPs. */
static size_t count_intact(const struct wg_device *dev, const struct wg_peer *want, size_t n)
{
	size_t ok = 0;

	for (size_t i = 0; i < n; i++) {
		const struct wg_peer *p = wg_device_find_peer(dev, want[i].public_key);

		ok += p && same_ips(p, &want[i]);
	}
	return ok;
}

static struct wg_device *read_device(const struct side *s)
{
	struct wg_device *dev = NULL;
	int ret = wg_device_get(be, s->ifname, &dev, err, sizeof(err));

	check(ret == 0, "read back %s", s->ifname);
	return dev;
}

static int setup_side(struct side *s, const struct side *other)
{
	int ret;

	if (enter(s))
		return -errno;
	if ((ret = nl_link_set_up("lo", true)) || (ret = nl_addr_add(s->veth, s->underlay)) ||
	    (ret = nl_link_set_up(s->veth, true)))
		return ret;
	ret = wg_interface_create(be, s->ifname, WG_CREATE_DIE_WITH_PARENT, &s->pid, err,
	                          sizeof(err));
	check(ret == 0 && s->pid > 0, "wireguard-go %s started in %s (pid %d)", s->ifname, s->ns,
	      (int)s->pid);
	if (ret)
		return ret;
	ret = wg_device_configure(be, s->ifname, s->priv, 51820, -1, err, sizeof(err));
	check(ret == 0, "%s: private key and listen port set", s->ifname);
	if (ret)
		return ret;
	if ((ret = nl_addr_add(s->ifname, s->tunnel)) || (ret = nl_link_set_mtu(s->ifname, 1380)) ||
	    (ret = nl_link_set_up(s->ifname, true)))
		return ret;
	ret = wg_peers_reconcile(be, s->ifname, &other->as_peer, 1, NULL, err, sizeof(err));
	check(ret == 0, "%s: reconcile with its one peer", s->ifname);
	return ret;
}

static void make_side(struct side *s, const char *ns, const char *veth, const char *name,
                      const char *underlay, const char *tunnel, const char *host,
                      const char *endpoint)
{
	s->ns = ns;
	s->veth = veth;
	s->underlay = underlay;
	s->tunnel = tunnel;
	s->tunnel_host = host;
	snprintf(s->ifname, sizeof(s->ifname), "%s%d", name, (int)getpid());
	wg_key_generate_private(s->priv);
	wg_key_public_from_private(s->pub, s->priv);
	wg_allowed_ip_parse(&s->ip, host);
	memcpy(s->as_peer.public_key, s->pub, WG_KEY_LEN);
	s->as_peer.allowed_ips = &s->ip;
	s->as_peer.n_allowed_ips = 1;
	wg_endpoint_parse(&s->as_peer.endpoint, endpoint);
}

static void test_first_contact(struct side *a, struct side *b)
{
	struct wg_device *dev = read_device(a);
	const struct wg_peer *p;

	if (!dev)
		return;
	check(dev->listen_port == 51820, "listen port read back");
	check(wg_key_equal(dev->public_key, a->pub), "public key read back");
	check(dev->n_peers == 1, "one peer read back (got %zu)", dev->n_peers);
	p = wg_device_find_peer(dev, b->pub);
	check(p && p->n_allowed_ips == 1 && same_ip(&p->allowed_ips[0], &b->ip) &&
	          p->endpoint.sa.sa_family == AF_INET && p->last_handshake.tv_sec == 0,
	      "peer, allowed IP and endpoint read back, no handshake yet");
	wg_device_free(dev);

	check(ping(a, "10.214.0.2", 2) == 0, "ping %s -> 10.214.0.2 through the tunnel", a->ns);
	check(ping(b, "10.214.0.1", 2) == 0, "ping %s -> 10.214.0.1 through the tunnel", b->ns);
	check(ping(a, "10.214.0.9", 1) != 0, "no ping to 10.214.0.9: no peer has it");

	dev = read_device(a);
	p = dev ? wg_device_find_peer(dev, b->pub) : NULL;
	check(p && p->last_handshake.tv_sec > 0 && p->rx_bytes > 0 && p->tx_bytes > 0,
	      "handshake and traffic read back (handshake %lld, rx %llu, tx %llu)",
	      p ? (long long)p->last_handshake.tv_sec : 0LL,
	      p ? (unsigned long long)p->rx_bytes : 0ULL,
	      p ? (unsigned long long)p->tx_bytes : 0ULL);
	wg_device_free(dev);
}

/* peers[0] is b; then MANY others with one /32 each in 10.214.4.0-10.214.7.x */
static struct wg_peer *make_many(const struct side *b, struct wg_allowed_ip *ips)
{
	struct wg_peer *peers = calloc(MANY + 1, sizeof(*peers));
	char text[32];
	wg_key priv;

	if (!peers)
		return NULL;
	peers[0] = b->as_peer;
	for (int i = 1; i <= MANY; i++) {
		wg_key_generate_private(priv);
		wg_key_public_from_private(peers[i].public_key, priv);
		snprintf(text, sizeof(text), "10.214.%d.%d/32", 4 + (i - 1) / 250,
		         1 + (i - 1) % 250);
		wg_allowed_ip_parse(&ips[i], text);
		peers[i].allowed_ips = &ips[i];
		peers[i].n_allowed_ips = 1;
	}
	return peers;
}

static void test_many_peers(struct side *a, struct side *b)
{
	static struct wg_allowed_ip ips[MANY + 1], newip, moved;
	struct wg_device *before = NULL, *after = NULL;
	struct wg_peer *peers = make_many(b, ips), extra = {0}, update;
	const struct wg_peer *pb, *pa;
	wg_key gone;
	int ret;

	if (!peers) {
		check(false, "memory for %d peers", MANY);
		return;
	}
	ret = wg_peers_reconcile(be, a->ifname, peers, MANY + 1, NULL, err, sizeof(err));
	check(ret == 0, "full reconcile of %d peers in one transaction", MANY + 1);
	after = read_device(a);
	check(after && after->n_peers == MANY + 1 &&
	          count_intact(after, peers, MANY + 1) == MANY + 1,
	      "all %d peers read back with their allowed IPs", MANY + 1);
	wg_device_free(after);
	check(ping(a, "10.214.0.2", 2) == 0, "ping after the full reconcile");

	before = read_device(a);
	pb = before ? wg_device_find_peer(before, b->pub) : NULL;
	check(pb && pb->last_handshake.tv_sec > 0, "handshake with %s after reconcile", b->ns);

	/* add one */
	wg_key_generate_private(extra.public_key);
	wg_allowed_ip_parse(&newip, "10.214.8.1/32");
	extra.allowed_ips = &newip;
	extra.n_allowed_ips = 1;
	ret = wg_peers_upsert(be, a->ifname, &extra, 1, err, sizeof(err));
	check(ret == 0, "incremental add of one peer");
	after = read_device(a);
	pa = after ? wg_device_find_peer(after, b->pub) : NULL;
	check(after && after->n_peers == MANY + 2, "%d peers after the add", MANY + 2);
	check(after && count_intact(after, &extra, 1) == 1, "the added peer is there");
	check(after && count_intact(after, peers, MANY + 1) == MANY + 1,
	      "the other %d peers are untouched", MANY + 1);
	check(pb && pa && pa->last_handshake.tv_sec == pb->last_handshake.tv_sec &&
	          pa->last_handshake.tv_nsec == pb->last_handshake.tv_nsec &&
	          pa->rx_bytes >= pb->rx_bytes,
	      "the live session with %s survived the add (same handshake, counters kept)", b->ns);
	wg_device_free(after);

	/* move one peer's allowed IP */
	update = peers[5];
	wg_allowed_ip_parse(&moved, "10.214.9.5/32");
	update.allowed_ips = &moved;
	ret = wg_peers_upsert(be, a->ifname, &update, 1, err, sizeof(err));
	check(ret == 0, "incremental update of one peer's allowed IPs");
	after = read_device(a);
	check(after && count_intact(after, &update, 1) == 1,
	      "the updated peer has exactly its new allowed IP");
	wg_device_free(after);

	/* remove one */
	memcpy(gone, peers[7].public_key, WG_KEY_LEN);
	ret = wg_peers_remove(be, a->ifname, &gone, 1, err, sizeof(err));
	check(ret == 0, "incremental remove of one peer");
	after = read_device(a);
	pa = after ? wg_device_find_peer(after, b->pub) : NULL;
	check(after && after->n_peers == MANY + 1 && !wg_device_find_peer(after, gone),
	      "the removed peer is gone, %d left", MANY + 1);
	/* peers[5] moved, peers[7] gone: the rest must be as they were */
	check(after && count_intact(after, peers, 5) == 5 &&
	          count_intact(after, peers + 6, 1) == 1 &&
	          count_intact(after, peers + 8, MANY + 1 - 8) == MANY + 1 - 8,
	      "the others are untouched by the remove");
	check(pb && pa && pa->last_handshake.tv_sec == pb->last_handshake.tv_sec,
	      "the live session survived the remove");
	wg_device_free(after);
	check(ping(a, "10.214.0.2", 2) == 0, "ping after the incremental changes");

	/* back to the list by reconcile: only the differences are written, so
	 * the live session with b goes on (replace_peers would restart it) */
	struct wg_reconcile_counts counts;
	ret = wg_peers_reconcile(be, a->ifname, peers, MANY + 1, &counts, err, sizeof(err));
	check(ret == 0 && counts.added == 1 && counts.changed == 1 && counts.removed == 1,
	      "reconcile writes the 3 differences alone (%zu added, %zu changed, %zu removed)",
	      counts.added, counts.changed, counts.removed);
	after = read_device(a);
	pa = after ? wg_device_find_peer(after, b->pub) : NULL;
	check(after && after->n_peers == MANY + 1 &&
	          count_intact(after, peers, MANY + 1) == MANY + 1,
	      "the device has exactly the %d listed peers again", MANY + 1);
	check(pb && pa && pa->last_handshake.tv_sec == pb->last_handshake.tv_sec &&
	          pa->last_handshake.tv_nsec == pb->last_handshake.tv_nsec &&
	          pa->endpoint.sa.sa_family == AF_INET,
	      "the live session with %s survived the reconcile (same handshake, its endpoint)",
	      b->ns);
	wg_device_free(after);
	ret = wg_peers_reconcile(be, a->ifname, peers, MANY + 1, &counts, err, sizeof(err));
	check(ret == 0 && !counts.added && !counts.changed && !counts.removed,
	      "a reconcile of the unchanged device writes nothing");
	check(ping(a, "10.214.0.2", 2) == 0, "ping after the reconciles");

	/* a key switch: peers[3]'s key replaced by another in one set, its
	 * allowed IPs kept; the others untouched */
	struct wg_peer switched = peers[3];
	wg_key_generate_private(switched.public_key);
	ret = wg_peer_replace(be, a->ifname, peers[3].public_key, &switched, err, sizeof(err));
	check(ret == 0, "replace of one peer's key in one set");
	after = read_device(a);
	check(after && after->n_peers == MANY + 1 &&
	          !wg_device_find_peer(after, peers[3].public_key) &&
	          count_intact(after, &switched, 1) == 1,
	      "the old key is gone, the new one has its allowed IPs, %d peers", MANY + 1);
	check(after && count_intact(after, peers, 3) == 3 &&
	          count_intact(after, peers + 4, MANY + 1 - 4) == MANY + 1 - 4,
	      "the others are untouched by the replace");
	wg_device_free(after);
	/* by its own key: the peer set anew (removed, then added), not gone */
	ret = wg_peer_replace(be, a->ifname, switched.public_key, &switched, err, sizeof(err));
	after = read_device(a);
	check(ret == 0 && after && after->n_peers == MANY + 1 &&
	          count_intact(after, &switched, 1) == 1,
	      "a replace by the peer's own key sets it anew: there, with its allowed IPs");
	wg_device_free(after);

	/* a /33 is refused before anything is sent: the device stays as it was */
	update = peers[9];
	moved.cidr = 33;
	update.allowed_ips = &moved;
	ret = wg_peers_upsert(be, a->ifname, &update, 1, err, sizeof(err));
	check(ret == -EINVAL && strstr(err, "prefix length"), "a /33 is refused (%d)", ret);
	after = read_device(a);
	check(after && after->n_peers == MANY + 1 && count_intact(after, peers + 8, 2) == 2,
	      "and nothing changed");
	wg_device_free(after);

	wg_device_free(before);
	free(peers);
}

/* A refusal that only the daemon can know of: its new port is taken. */
static void test_daemon_refusal(struct side *a, struct side *b)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(51999)};
	int fd, ret;

	if (enter(a) || (fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		check(false, "holding UDP port 51999 in %s: %s", a->ns, strerror(errno));
		return;
	}
	ret = wg_device_configure(be, a->ifname, NULL, 51999, -1, err, sizeof(err));
	check(ret == -EADDRINUSE && strstr(err, "refused"),
	      "the daemon's errno comes back: port in use gives -EADDRINUSE (%d)", ret);
	err[0] = '\0';
	close(fd);
	ret = wg_device_configure(be, a->ifname, NULL, 51820, -1, err, sizeof(err));
	check(ret == 0, "port set back to 51820");
	check(ping(a, "10.214.0.2", 2) == 0 && ping(b, "10.214.0.1", 2) == 0,
	      "pings both ways after the refusal");
}

int main(int argc, char **argv)
{
	char path[256], sock[128];
	struct side *a = &sides[0], *b = &sides[1];
	int ret = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: %s NS_A NS_B VETH_A VETH_B\n", argv[0]);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (wg_backend_select("userspace", &be, err, sizeof(err)))
		return 1;
	make_side(a, argv[1], argv[3], "mgwA", "10.213.0.1/24", "10.214.0.1/24", "10.214.0.1/32",
	          "10.213.0.1:51820");
	make_side(b, argv[2], argv[4], "mgwB", "10.213.0.2/24", "10.214.0.2/24", "10.214.0.2/32",
	          "10.213.0.2:51820");
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/run/netns/%s", sides[i].ns);
		sides[i].nsfd = open(path, O_RDONLY | O_CLOEXEC);
		if (sides[i].nsfd < 0) {
			perror(path);
			return 1;
		}
	}
	if ((ret = setup_side(a, b)) || (ret = setup_side(b, a))) {
		check(false, "setting up the two sides: %s", strerror(-ret));
		goto out;
	}
	test_first_contact(a, b);
	test_many_peers(a, b);
	test_daemon_refusal(a, b);
	ret = 0;
out:
	stop_daemons();
	for (int i = 0; i < 2; i++) {
		wg_uapi_socket_path(sock, sizeof(sock), sides[i].ifname);
		check(access(sock, F_OK) != 0, "%s stopped, its socket gone", sides[i].ifname);
	}
	printf("%d failure(s)\n", failures);
	return ret || failures ? 1 : 0;
}
