/* UDP: a worker thread per listen socket, in a blocking recvmmsg/sendmmsg
 * loop. A batch is answered under one read lock of the index; what must
 * go upstream is handed to the plugin thread (a queue and an eventfd).
 * The plugin thread's event loop would cost a poll of its bus sockets per
 * wake-up; this loop makes one system call per batch each way, which is
 * what lets it beat dnsmasq per CPU-second (docs/dns.md). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dns.h"

#define BATCH    64
#define RECV_MAX 4096 /* larger datagrams are not queries of ours */
#define CMSG_MAX CMSG_SPACE(sizeof(struct in6_pktinfo))

int dns_acl_allows(const struct dns_acl *acl, const struct sockaddr *sa)
{
	for (size_t i = 0; i < acl->n; i++)
		if (dns_prefix_has(&acl->prefix[i], sa))
			return 1;
	return 0;
}

int dns_server_init(struct dns_server *srv, char *err, size_t errlen)
{
	memset(srv, 0, sizeof(*srv));
	srv->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->evfd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -errno;
	}
	pthread_rwlock_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->qlock, NULL);
	return 0;
}

void dns_server_destroy(struct dns_server *srv)
{
	for (struct dns_handoff *h = dns_handoff_take(srv), *next; h; h = next) {
		next = h->next;
		free(h);
	}
	dns_index_free(srv->index);
	srv->index = NULL;
	if (srv->evfd >= 0)
		close(srv->evfd);
	srv->evfd = -1;
	pthread_rwlock_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->qlock);
}

struct dns_handoff *dns_handoff_take(struct dns_server *srv)
{
	uint64_t v;
	pthread_mutex_lock(&srv->qlock);
	struct dns_handoff *h = srv->qhead;
	srv->qhead = srv->qtail = NULL;
	srv->qlen = 0;
	pthread_mutex_unlock(&srv->qlock);
	if (srv->evfd >= 0 && read(srv->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		v = 0;
	return h;
}

/* ---- the destination of datagrams to a wildcard socket ---- */

static void dst_of(struct msghdr *m, int *family, struct in6_pktinfo *dst)
{
	*family = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			memset(dst, 0, sizeof(*dst));
			memcpy(&dst->ipi6_addr, &pi.ipi_addr, sizeof(pi.ipi_addr));
			*family = AF_INET;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			memcpy(dst, CMSG_DATA(c), sizeof(*dst));
			*family = AF_INET6;
		}
	}
}

/* The control message that sends from `dst`; its length (0: none). */
static size_t dst_cmsg(int family, const struct in6_pktinfo *dst, char *buf)
{
	if (!family)
		return 0;
	struct msghdr m = {.msg_control = buf, .msg_controllen = CMSG_MAX};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	memset(buf, 0, CMSG_MAX);
	if (family == AF_INET) {
		struct in_pktinfo pi = {0};
		memcpy(&pi.ipi_spec_dst, &dst->ipi6_addr, sizeof(pi.ipi_spec_dst));
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		return CMSG_SPACE(sizeof(pi));
	}
	if (family == AF_INET6) {
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(*dst));
		memcpy(CMSG_DATA(c), dst, sizeof(*dst));
		return CMSG_SPACE(sizeof(*dst));
	}
	return 0;
}

void dns_udp_send(int fd, const struct sockaddr *to, socklen_t tolen, int dst_family,
                  const struct in6_pktinfo *dst, const uint8_t *data, size_t len)
{
	char ctrl[CMSG_MAX];
	struct iovec iov = {(void *)data, len};
	struct msghdr m = {
	    .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
	size_t clen = dst_cmsg(dst_family, dst, ctrl);
	if (clen) {
		m.msg_control = ctrl;
		m.msg_controllen = clen;
	}
	if (sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		(void)errno; /* a client gone or a full buffer: UDP may lose it */
}

static int handoff(struct dns_server *srv, int fd, const struct msghdr *m, int dst_family,
                   const struct in6_pktinfo *dst, const uint8_t *data, size_t len)
{
	struct dns_handoff *h = malloc(sizeof(*h) + len);
	if (!h)
		return -ENOMEM;
	h->next = NULL;
	h->fd = fd;
	memcpy(&h->from, m->msg_name, m->msg_namelen);
	h->fromlen = m->msg_namelen;
	h->dst_family = dst_family;
	if (dst_family)
		h->dst = *dst;
	h->len = len;
	memcpy(h->data, data, len);
	pthread_mutex_lock(&srv->qlock);
	if (srv->qlen >= DNS_MAX_HANDOFF) {
		pthread_mutex_unlock(&srv->qlock);
		free(h);
		return -ENOSPC;
	}
	if (srv->qtail)
		srv->qtail->next = h;
	else
		srv->qhead = h;
	srv->qtail = h;
	srv->qlen++;
	pthread_mutex_unlock(&srv->qlock);
	uint64_t one = 1;
	if (write(srv->evfd, &one, sizeof(one)) < 0)
		(void)errno; /* the counter is full: a wake-up is pending anyway */
	return 0;
}

struct worker {
	uint8_t in[BATCH][RECV_MAX];
	uint8_t out[BATCH][DNS_UDP_PAYLOAD];
	struct sockaddr_storage from[BATCH];
	char cin[BATCH][CMSG_MAX], cout[BATCH][CMSG_MAX];
	struct iovec riov[BATCH], siov[BATCH];
	struct mmsghdr r[BATCH], s[BATCH];
	struct dns_query q[BATCH];
	int8_t state[BATCH]; /* SKIP, PARSED (q[i] holds it), or RAW (ldns decides) */
};

enum { SKIP, PARSED, RAW };

/* What a batch did, added to the shared counters once. */
struct tally {
	uint64_t answered, nxdomain, forwarded, refused, formerr, truncated, dropped;
};

static void count_reply(struct tally *t, const uint8_t *out)
{
	int rcode = out[3] & 0x0f;
	t->answered++;
	if (rcode == DNS_R_NXDOMAIN)
		t->nxdomain++;
	else if (rcode == DNS_R_FORMERR)
		t->formerr++;
	if (out[2] & 0x02)
		t->truncated++;
}

static void add(_Atomic uint64_t *counter, uint64_t v)
{
	if (v) /* most are 0: no locked instruction for them */
		atomic_fetch_add_explicit(counter, v, memory_order_relaxed);
}

static void add_tally(struct dns_counters *c, const struct tally *t, uint64_t udp)
{
	add(&c->udp, udp);
	add(&c->answered, t->answered);
	add(&c->nxdomain, t->nxdomain);
	add(&c->forwarded, t->forwarded);
	add(&c->refused_source, t->refused);
	add(&c->formerr, t->formerr);
	add(&c->truncated, t->truncated);
	add(&c->dropped, t->dropped);
}

/* The batch's queries decoded and their names' slots, then nodes,
 * prefetched: the index's cache misses overlap instead of adding up. */
static void decode_batch(struct dns_listener *l, struct worker *w, int n, const struct dns_view *v,
                         struct tally *t)
{
	struct dns_server *srv = l->srv;
	for (int i = 0; i < n; i++) {
		struct msghdr *m = &w->r[i].msg_hdr;
		w->state[i] = SKIP;
		if (m->msg_flags & MSG_TRUNC) {
			t->dropped++;
		} else if (!dns_acl_allows(&srv->acl, m->msg_name)) {
			t->refused++; /* never an open resolver: silence */
		} else if (v->fast_path && !dns_query_parse(w->in[i], w->r[i].msg_len, &w->q[i])) {
			w->state[i] = PARSED;
			dns_index_prefetch(v->index, w->q[i].qhash, 0);
		} else {
			w->state[i] = RAW;
		}
	}
	for (int i = 0; i < n; i++)
		if (w->state[i] == PARSED)
			dns_index_prefetch(v->index, w->q[i].qhash, 1);
}

/* Answers one received batch into w->s; returns how many replies. */
static int answer_batch(struct dns_listener *l, struct worker *w, int n, struct tally *t)
{
	struct dns_server *srv = l->srv;
	int ns = 0;
	pthread_rwlock_rdlock(&srv->lock);
	struct dns_view v = {srv->index, srv->can_forward, srv->fast_path};
	decode_batch(l, w, n, &v, t);
	for (int i = 0; i < n; i++) {
		struct msghdr *m = &w->r[i].msg_hdr;
		struct in6_pktinfo dst;
		int dst_family = 0;
		size_t outlen = 0;
		enum dns_verdict verdict;
		if (w->state[i] == SKIP)
			continue;
		if (l->wildcard)
			dst_of(m, &dst_family, &dst);
		if (w->state[i] == PARSED)
			verdict =
			    dns_serve_query(&v, &w->q[i], 0, w->out[ns], DNS_UDP_PAYLOAD, &outlen);
		else
			verdict = dns_serve(&v, w->in[i], w->r[i].msg_len, 0, w->out[ns],
			                    DNS_UDP_PAYLOAD, &outlen);
		switch (verdict) {
		case DNS_REPLY: {
			struct msghdr *s = &w->s[ns].msg_hdr;
			count_reply(t, w->out[ns]);
			w->siov[ns] = (struct iovec){w->out[ns], outlen};
			*s = (struct msghdr){.msg_name = m->msg_name,
			                     .msg_namelen = m->msg_namelen,
			                     .msg_iov = &w->siov[ns],
			                     .msg_iovlen = 1};
			size_t clen = dst_cmsg(dst_family, &dst, w->cout[ns]);
			if (clen) {
				s->msg_control = w->cout[ns];
				s->msg_controllen = clen;
			}
			ns++;
			break;
		}
		case DNS_FORWARD:
			if (handoff(srv, l->udp, m, dst_family, &dst, w->in[i], w->r[i].msg_len))
				t->dropped++;
			else
				t->forwarded++;
			break;
		case DNS_DROP:
			t->dropped++;
			break;
		}
	}
	pthread_rwlock_unlock(&srv->lock);
	return ns;
}

static void *worker_main(void *arg)
{
	struct dns_listener *l = arg;
	struct worker *w = calloc(1, sizeof(*w));
	int last = BATCH;
	if (!w)
		return NULL;
	for (int i = 0; i < BATCH; i++)
		w->riov[i] = (struct iovec){w->in[i], RECV_MAX};
	for (;;) {
		for (int i = 0; i < last; i++)
			w->r[i].msg_hdr = (struct msghdr){
			    .msg_name = &w->from[i],
			    .msg_namelen = sizeof(w->from[i]),
			    .msg_iov = &w->riov[i],
			    .msg_iovlen = 1,
			    .msg_control = l->wildcard ? w->cin[i] : NULL,
			    .msg_controllen = l->wildcard ? CMSG_MAX : 0,
			};
		int n = recvmmsg(l->udp, w->r, BATCH, MSG_WAITFORONE, NULL);
		if (atomic_load(&l->stop))
			break;
		if (n <= 0)
			continue; /* EINTR, or an ICMP error of an earlier reply */
		struct tally t = {0};
		int ns = answer_batch(l, w, n, &t);
		/* counted before the replies leave: whoever reads a reply sees it */
		add_tally(&l->srv->count, &t, (uint64_t)n);
		for (int sent = 0; sent < ns;) {
			int k = sendmmsg(l->udp, w->s + sent, (unsigned)(ns - sent), MSG_DONTWAIT);
			if (k <= 0) { /* the rest is lost, as UDP may */
				add(&l->srv->count.dropped, (uint64_t)(ns - sent));
				break;
			}
			sent += k;
		}
		last = n;
	}
	free(w);
	return NULL;
}

static int open_socket(struct dns_listener *l, int type, char *err, size_t errlen)
{
	int one = 1, family = l->addr.ss_family;
	const char *what = type == SOCK_DGRAM ? "udp" : "tcp";
	int fd = socket(family, type | SOCK_CLOEXEC | (type == SOCK_STREAM ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s (%s): %s", l->text, what,
		         strerror(errno));
		return -1;
	}
	/* the address may not exist yet: the wireguard plugin adds it */
	setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (type == SOCK_DGRAM && l->wildcard) {
		if (family == AF_INET)
			setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		else
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	}
	if (type == SOCK_DGRAM) {
		/* replies are never fragmented (DNS_UDP_PAYLOAD keeps them under
		 * any sane MTU; larger ones are truncated for TCP): DF set, and an
		 * IP id is then not computed per packet */
		int size = 1 << 20, probe = IP_PMTUDISC_PROBE;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
		if (family == AF_INET)
			setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof(probe));
		else
			setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof(probe));
	}
	if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) ||
	    (type == SOCK_STREAM && listen(fd, 64))) {
		snprintf(err, errlen, "cannot listen on %s (%s): %s", l->text, what,
		         strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int is_wildcard(const struct sockaddr_storage *ss)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return !memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &any6, sizeof(any6));
}

int dns_listener_open(struct dns_listener *l, char *err, size_t errlen)
{
	struct sockaddr_storage asked = l->addr;
	int any_port =
	    (asked.ss_family == AF_INET ? ((struct sockaddr_in *)&asked)->sin_port
	                                : ((struct sockaddr_in6 *)&asked)->sin6_port) == 0;
	l->wildcard = is_wildcard(&l->addr);
	/* port 0 (tests): TCP takes the port UDP got; when a TCP socket of
	 * another program holds that port, try another one */
	for (int tries = 0; tries < (any_port ? 16 : 1); tries++) {
		l->addr = asked;
		l->udp = open_socket(l, SOCK_DGRAM, err, errlen);
		if (l->udp < 0)
			return -EADDRNOTAVAIL;
		socklen_t len = l->addrlen;
		getsockname(l->udp, (struct sockaddr *)&l->addr, &len);
		l->tcp = open_socket(l, SOCK_STREAM, err, errlen);
		if (l->tcp >= 0)
			return 0;
		close(l->udp);
		l->udp = -1;
	}
	return -EADDRNOTAVAIL;
}

int dns_listener_start(struct dns_listener *l, struct dns_server *srv, char *err, size_t errlen)
{
	sigset_t all, old;
	l->srv = srv;
	atomic_store(&l->stop, 0);
	/* signals belong to meshgated's main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&l->thread, NULL, worker_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the worker of %s: %s", l->text, strerror(rc));
		return -rc;
	}
	l->running = 1;
	return 0;
}

void dns_listener_close(struct dns_listener *l)
{
	if (l->running) {
		atomic_store(&l->stop, 1);
		/* wakes the blocked recvmmsg (it then returns at once) */
		shutdown(l->udp, SHUT_RDWR);
		pthread_join(l->thread, NULL);
		l->running = 0;
	}
	if (l->udp >= 0)
		close(l->udp);
	if (l->tcp >= 0)
		close(l->tcp);
	l->udp = l->tcp = -1;
}
