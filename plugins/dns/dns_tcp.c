/* TCP clients, on the plugin thread: length-prefixed messages, several per
 * connection (pipelined), answers in order of readiness. A connection
 * that sends garbage is closed; an idle one after DNS_TCP_IDLE_MS. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dns.h"

struct conn {
	struct dns_io io;
	struct dns *d;
	struct conn *next;
	uint64_t id, last_ms;
	uint8_t *rbuf; /* DNS_TCP_MAX + 2 */
	size_t rlen;
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
	int inflight; /* forwarded, answer to come */
	int eof, busy, dead;
};

struct dns_tcp {
	struct conn *conns;
	size_t n;
	uint64_t next_id;
	uint8_t out[DNS_TCP_MAX];
};

struct dns_tcp *dns_tcp_new(void)
{
	return calloc(1, sizeof(struct dns_tcp));
}

static void conn_free(struct dns *d, struct conn *c)
{
	for (struct conn **pp = &d->tcp->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	dns_io_del(d, &c->io);
	close(c->io.fd);
	free(c->rbuf);
	free(c->wbuf);
	free(c);
	d->tcp->n--;
}

void dns_tcp_free(struct dns *d)
{
	if (!d->tcp)
		return;
	while (d->tcp->conns)
		conn_free(d, d->tcp->conns);
	free(d->tcp);
	d->tcp = NULL;
}

static int queue(struct conn *c, const uint8_t *data, size_t len)
{
	if (c->wlen + 2 + len > c->wcap) {
		size_t cap = c->wcap ? c->wcap : 1024;
		while (cap < c->wlen + 2 + len)
			cap *= 2;
		uint8_t *w = realloc(c->wbuf, cap);
		if (!w)
			return -ENOMEM;
		c->wbuf = w;
		c->wcap = cap;
	}
	c->wbuf[c->wlen] = (uint8_t)(len >> 8);
	c->wbuf[c->wlen + 1] = (uint8_t)len;
	memcpy(c->wbuf + c->wlen + 2, data, len);
	c->wlen += 2 + len;
	return 0;
}

static void flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->io.fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				c->dead = 1;
			return;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
}

/* Answers every complete message in the buffer (while the forwarded ones
 * stay under the limit). */
static void process(struct dns *d, struct conn *c)
{
	struct dns_view v = dns_view_of(&d->srv);
	c->busy = 1;
	while (!c->dead && c->rlen >= 2 && c->inflight < DNS_TCP_INFLIGHT) {
		size_t len = (size_t)c->rbuf[0] << 8 | c->rbuf[1];
		if (c->rlen < 2 + len)
			break;
		size_t outlen = 0;
		atomic_fetch_add_explicit(&d->srv.count.tcp, 1, memory_order_relaxed);
		switch (
		    dns_serve(&v, c->rbuf + 2, len, 1, d->tcp->out, sizeof(d->tcp->out), &outlen)) {
		case DNS_REPLY:
			atomic_fetch_add_explicit(&d->srv.count.answered, 1, memory_order_relaxed);
			if ((d->tcp->out[3] & 0x0f) == DNS_R_NXDOMAIN)
				atomic_fetch_add_explicit(&d->srv.count.nxdomain, 1,
				                          memory_order_relaxed);
			if ((d->tcp->out[3] & 0x0f) == DNS_R_FORMERR)
				atomic_fetch_add_explicit(&d->srv.count.formerr, 1,
				                          memory_order_relaxed);
			if (queue(c, d->tcp->out, outlen))
				c->dead = 1;
			break;
		case DNS_FORWARD:
			atomic_fetch_add_explicit(&d->srv.count.forwarded, 1, memory_order_relaxed);
			c->inflight++;
			dns_fwd_tcp(d, c->id, c->rbuf + 2, len);
			break;
		case DNS_DROP: /* garbage on a stream: the framing cannot be trusted */
			atomic_fetch_add_explicit(&d->srv.count.dropped, 1, memory_order_relaxed);
			c->dead = 1;
			break;
		}
		memmove(c->rbuf, c->rbuf + 2 + len, c->rlen - 2 - len);
		c->rlen -= 2 + len;
	}
	c->busy = 0;
	flush(c);
}

/* Closes the connection when it is done, else watches what it waits for. */
static void settle(struct dns *d, struct conn *c)
{
	if (c->dead || (c->eof && !c->inflight && c->woff == c->wlen)) {
		conn_free(d, c);
		return;
	}
	uint32_t ev = 0;
	if (!c->eof && c->rlen < DNS_TCP_MAX + 2)
		ev |= EPOLLIN;
	if (c->woff < c->wlen)
		ev |= EPOLLOUT;
	if (dns_io_mod(d, &c->io, ev))
		conn_free(d, c);
}

static void conn_io(struct dns_io *io, uint32_t events)
{
	struct conn *c = (struct conn *)((char *)io - offsetof(struct conn, io));
	struct dns *d = c->d;
	c->last_ms = mg_now_ms(d->ctx);
	if (events & EPOLLOUT)
		flush(c);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = read(c->io.fd, c->rbuf + c->rlen, DNS_TCP_MAX + 2 - c->rlen);
		if (n == 0)
			c->eof = 1;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			c->dead = 1;
		else if (n > 0)
			c->rlen += (size_t)n;
	}
	process(d, c);
	settle(d, c);
}

void dns_tcp_accept(struct dns *d, int listen_fd)
{
	for (;;) {
		struct sockaddr_storage from;
		socklen_t len = sizeof(from);
		int fd = accept4(listen_fd, (struct sockaddr *)&from, &len,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (!dns_acl_allows(&d->srv.acl, (struct sockaddr *)&from)) {
			atomic_fetch_add_explicit(&d->srv.count.refused_source, 1,
			                          memory_order_relaxed);
			close(fd);
			continue;
		}
		struct conn *c = d->tcp->n < DNS_MAX_TCP ? calloc(1, sizeof(*c)) : NULL;
		if (c && !(c->rbuf = malloc(DNS_TCP_MAX + 2))) {
			free(c);
			c = NULL;
		}
		if (!c) {
			close(fd);
			continue;
		}
		c->io = (struct dns_io){conn_io, fd, d};
		c->d = d;
		c->id = ++d->tcp->next_id;
		c->last_ms = mg_now_ms(d->ctx);
		if (dns_io_add(d, &c->io, EPOLLIN)) {
			close(fd);
			free(c->rbuf);
			free(c);
			continue;
		}
		c->next = d->tcp->conns;
		d->tcp->conns = c;
		d->tcp->n++;
		dns_sweep_needed(d);
	}
}

void dns_tcp_reply(struct dns *d, uint64_t id, const uint8_t *data, size_t len)
{
	struct conn *c = d->tcp ? d->tcp->conns : NULL;
	while (c && c->id != id)
		c = c->next;
	if (!c)
		return; /* the client went away meanwhile */
	c->inflight--;
	if (data && queue(c, data, len))
		c->dead = 1;
	if (c->busy) /* from inside process(): it goes on by itself */
		return;
	c->last_ms = mg_now_ms(d->ctx);
	process(d, c);
	settle(d, c);
}

size_t dns_tcp_sweep(struct dns *d, uint64_t now_ms)
{
	if (!d->tcp)
		return 0;
	for (struct conn *c = d->tcp->conns, *next; c; c = next) {
		next = c->next;
		if (!c->inflight && now_ms - c->last_ms >= DNS_TCP_IDLE_MS)
			conn_free(d, c);
	}
	return d->tcp->n;
}
