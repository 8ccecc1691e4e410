/* Forwarding, on the plugin thread and never blocking it: a table of
 * pending queries, each with its own non-blocking socket connected to the
 * upstream it tries (a fresh source port and a random id each time, and
 * the kernel drops datagrams from anyone else), a deadline checked by the
 * sweep timer, and failover to the next upstream on a timeout, an error
 * or a SERVFAIL/REFUSED/NOTIMP. When none answers: SERVFAIL. Clients over
 * UDP are forwarded over UDP, clients over TCP over TCP. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dns.h"

struct pending {
	struct dns_io io; /* io.fd: the socket to the upstream, -1 between tries */
	struct dns *d;
	int used, tcp;
	struct dns_handoff *h; /* a UDP client: its address and its query */
	uint64_t conn;         /* a TCP client */
	uint8_t *query;        /* the query, with our id */
	size_t len;
	uint16_t client_id, up_id;
	struct dns_question question;
	size_t first, tried, current; /* upstreams: where it started, how many tried */
	uint64_t deadline;
	/* TCP to the upstream: bytes of [length][query] written, the reply read */
	size_t woff, rlen;
	uint8_t *rbuf;
	int connected;
};

struct dns_fwd {
	struct pending slot[DNS_MAX_PENDING];
	size_t used;
	size_t preferred; /* the upstream that answered last */
	uint16_t rnd[64];
	size_t nrnd;
	uint8_t buf[DNS_TCP_MAX + 2];
};

struct dns_fwd *dns_fwd_new(void)
{
	struct dns_fwd *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	for (size_t i = 0; i < DNS_MAX_PENDING; i++)
		f->slot[i].io.fd = -1;
	return f;
}

static uint16_t random_id(struct dns_fwd *f)
{
	if (!f->nrnd) {
		if (getrandom(f->rnd, sizeof(f->rnd), 0) != (ssize_t)sizeof(f->rnd))
			for (size_t i = 0; i < 64; i++) /* never expected: still vary */
				f->rnd[i] = (uint16_t)(f->rnd[i] * 31421u + 6927u + i);
		f->nrnd = 64;
	}
	return f->rnd[--f->nrnd];
}

static void close_upstream(struct dns *d, struct pending *p)
{
	if (p->io.fd >= 0) {
		dns_io_del(d, &p->io);
		close(p->io.fd);
		p->io.fd = -1;
	}
	free(p->rbuf);
	p->rbuf = NULL;
	p->woff = p->rlen = 0;
	p->connected = 0;
}

static void release(struct dns *d, struct pending *p)
{
	close_upstream(d, p);
	free(p->h);
	free(p->query);
	memset(p, 0, sizeof(*p));
	p->io.fd = -1;
	d->fwd->used--;
}

/* The answer goes to the client, with the client's id. */
static void deliver(struct dns *d, struct pending *p, uint8_t *data, size_t len)
{
	data[0] = (uint8_t)(p->client_id >> 8);
	data[1] = (uint8_t)p->client_id;
	if (p->tcp) {
		dns_tcp_reply(d, p->conn, data, len);
	} else {
		/* our UDP replies never fragment (DF): what is larger goes by TCP */
		uint8_t cut[DNS_UDP_PAYLOAD];
		if (len > DNS_UDP_PAYLOAD) {
			len = dns_truncate_reply(data, len, cut, sizeof(cut));
			data = cut;
			atomic_fetch_add_explicit(&d->srv.count.truncated, 1, memory_order_relaxed);
		}
		if (len)
			dns_udp_send(p->h->fd, (struct sockaddr *)&p->h->from, p->h->fromlen,
			             p->h->dst_family, &p->h->dst, data, len);
	}
	release(d, p);
}

static void fail(struct dns *d, struct pending *p)
{
	uint8_t *out = d->fwd->buf;
	p->query[0] = (uint8_t)(p->client_id >> 8);
	p->query[1] = (uint8_t)p->client_id;
	size_t n = dns_error_reply(p->query, p->len, DNS_R_SERVFAIL, 1, out, sizeof(d->fwd->buf));
	atomic_fetch_add_explicit(&d->srv.count.servfail, 1, memory_order_relaxed);
	if (n) {
		deliver(d, p, out, n);
		return;
	}
	if (p->tcp)
		dns_tcp_reply(d, p->conn, NULL, 0);
	release(d, p);
}

static void pending_io(struct dns_io *io, uint32_t events);

/* Tries the next upstream; answers SERVFAIL when every one was tried. */
static void attempt(struct dns *d, struct pending *p)
{
	for (;;) {
		close_upstream(d, p);
		size_t n = d->cfg.nupstream;
		if (p->tried >= n) {
			fail(d, p);
			return;
		}
		p->current = (p->first + p->tried++) % n;
		p->up_id = random_id(d->fwd);
		p->query[0] = (uint8_t)(p->up_id >> 8);
		p->query[1] = (uint8_t)p->up_id;
		const struct sockaddr_storage *to = &d->cfg.upstream[p->current];
		int fd =
		    socket(to->ss_family,
		           (p->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int rc = connect(fd, (const struct sockaddr *)to, d->cfg.upstream_len[p->current]);
		if (rc && !(p->tcp && errno == EINPROGRESS)) {
			close(fd);
			continue;
		}
		if (!p->tcp && send(fd, p->query, p->len, MSG_NOSIGNAL) != (ssize_t)p->len) {
			close(fd);
			continue;
		}
		p->io.fd = fd;
		p->io.fn = pending_io;
		p->io.d = d;
		if (dns_io_add(d, &p->io, p->tcp ? EPOLLOUT : EPOLLIN)) {
			close(fd);
			p->io.fd = -1;
			continue;
		}
		p->deadline = mg_now_ms(d->ctx) + d->cfg.upstream_timeout_ms;
		return;
	}
}

/* A reply from the upstream: to the client, or on to the next upstream. */
static void got_reply(struct dns *d, struct pending *p, uint8_t *data, size_t len)
{
	int rcode = dns_reply_check(data, len, p->up_id, &p->question);
	if (rcode < 0)
		return; /* not the reply to this query: keep waiting */
	if ((rcode == DNS_R_SERVFAIL || rcode == DNS_R_REFUSED || rcode == DNS_R_NOTIMP) &&
	    p->tried < d->cfg.nupstream) {
		attempt(d, p);
		return;
	}
	if (rcode == DNS_R_NOERROR || rcode == DNS_R_NXDOMAIN)
		d->fwd->preferred = p->current;
	if (rcode == DNS_R_SERVFAIL)
		atomic_fetch_add_explicit(&d->srv.count.servfail, 1, memory_order_relaxed);
	deliver(d, p, data, len);
}

static void udp_readable(struct dns *d, struct pending *p)
{
	for (;;) {
		ssize_t n = recv(p->io.fd, d->fwd->buf, sizeof(d->fwd->buf), 0);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				attempt(d, p); /* ICMP unreachable, typically */
			return;
		}
		int fd = p->io.fd;
		got_reply(d, p, d->fwd->buf, (size_t)n);
		if (!p->used || p->io.fd != fd)
			return;
	}
}

static void tcp_io(struct dns *d, struct pending *p, uint32_t events)
{
	if (!p->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(p->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
			attempt(d, p);
			return;
		}
		p->connected = 1;
	}
	if (p->woff < p->len + 2) {
		uint8_t frame[2] = {(uint8_t)(p->len >> 8), (uint8_t)p->len};
		struct iovec iov[2] = {
		    {frame + (p->woff < 2 ? p->woff : 2), p->woff < 2 ? 2 - p->woff : 0},
		    {p->query + (p->woff > 2 ? p->woff - 2 : 0),
		     p->len - (p->woff > 2 ? p->woff - 2 : 0)}};
		ssize_t n = writev(p->io.fd, iov, 2);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				attempt(d, p);
			return;
		}
		p->woff += (size_t)n;
		if (p->woff == p->len + 2)
			dns_io_mod(d, &p->io, EPOLLIN);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (!p->rbuf && !(p->rbuf = malloc(DNS_TCP_MAX + 2))) {
		attempt(d, p);
		return;
	}
	size_t need = p->rlen < 2 ? 2 : 2 + ((size_t)p->rbuf[0] << 8 | p->rbuf[1]);
	ssize_t n = read(p->io.fd, p->rbuf + p->rlen, need - p->rlen);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			attempt(d, p);
		return;
	}
	p->rlen += (size_t)n;
	if (p->rlen == 2 && !(p->rbuf[0] | p->rbuf[1])) {
		attempt(d, p);
		return;
	}
	if (p->rlen > 2 && p->rlen == 2 + ((size_t)p->rbuf[0] << 8 | p->rbuf[1])) {
		memcpy(d->fwd->buf, p->rbuf + 2, p->rlen - 2);
		size_t len = p->rlen - 2;
		p->rlen = 0;
		got_reply(d, p, d->fwd->buf, len);
	}
}

static void pending_io(struct dns_io *io, uint32_t events)
{
	struct pending *p = (struct pending *)((char *)io - offsetof(struct pending, io));
	if (p->tcp)
		tcp_io(p->d, p, events);
	else
		udp_readable(p->d, p);
}

static struct pending *start(struct dns *d, const uint8_t *query, size_t len)
{
	struct dns_fwd *f = d->fwd;
	struct dns_question q;
	if (!f || !d->cfg.nupstream || f->used >= DNS_MAX_PENDING || len < DNS_HEADER ||
	    dns_query_question(query, len, &q))
		return NULL;
	struct pending *p = NULL;
	for (size_t i = 0; i < DNS_MAX_PENDING && !p; i++)
		if (!f->slot[i].used)
			p = &f->slot[i];
	if (!p || !(p->query = malloc(len)))
		return NULL;
	memcpy(p->query, query, len);
	p->len = len;
	p->d = d;
	p->used = 1;
	p->question = q;
	p->client_id = (uint16_t)(query[0] << 8 | query[1]);
	p->first = f->preferred < d->cfg.nupstream ? f->preferred : 0;
	p->tried = 0;
	p->io.fd = -1;
	f->used++;
	dns_sweep_needed(d);
	return p;
}

void dns_fwd_udp(struct dns *d, struct dns_handoff *h)
{
	struct pending *p = start(d, h->data, h->len);
	if (!p) {
		size_t n = dns_error_reply(h->data, h->len, DNS_R_SERVFAIL, 1, d->fwd->buf,
		                           sizeof(d->fwd->buf));
		atomic_fetch_add_explicit(&d->srv.count.servfail, 1, memory_order_relaxed);
		if (n)
			dns_udp_send(h->fd, (struct sockaddr *)&h->from, h->fromlen, h->dst_family,
			             &h->dst, d->fwd->buf, n);
		free(h);
		return;
	}
	p->h = h;
	attempt(d, p);
}

int dns_fwd_tcp(struct dns *d, uint64_t conn_id, const uint8_t *query, size_t len)
{
	struct pending *p = start(d, query, len);
	if (!p) {
		size_t n = dns_error_reply(query, len, DNS_R_SERVFAIL, 1, d->fwd->buf,
		                           sizeof(d->fwd->buf));
		atomic_fetch_add_explicit(&d->srv.count.servfail, 1, memory_order_relaxed);
		dns_tcp_reply(d, conn_id, n ? d->fwd->buf : NULL, n);
		return -ENOSPC;
	}
	p->tcp = 1;
	p->conn = conn_id;
	attempt(d, p);
	return 0;
}

size_t dns_fwd_sweep(struct dns *d, uint64_t now_ms)
{
	struct dns_fwd *f = d->fwd;
	for (size_t i = 0; f && i < DNS_MAX_PENDING; i++) {
		struct pending *p = &f->slot[i];
		if (p->used && now_ms >= p->deadline) {
			atomic_fetch_add_explicit(&d->srv.count.upstream_timeouts, 1,
			                          memory_order_relaxed);
			attempt(d, p);
		}
	}
	return f ? f->used : 0;
}

size_t dns_fwd_pending(struct dns *d)
{
	return d->fwd ? d->fwd->used : 0;
}

void dns_fwd_free(struct dns *d)
{
	if (!d->fwd)
		return;
	for (size_t i = 0; i < DNS_MAX_PENDING; i++)
		if (d->fwd->slot[i].used)
			release(d, &d->fwd->slot[i]);
	free(d->fwd);
	d->fwd = NULL;
}
