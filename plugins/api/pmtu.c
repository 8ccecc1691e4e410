#include "pmtu.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "probe.h"

/* Per source: a burst of RATE_BURST answers, then RATE_PER_S a second: a
 * search takes some 30 probes over seconds; a confirmation one a second. */
#define RATE_PER_S   20
#define RATE_BURST   40
#define RATE_SOURCES 256 /* buckets; a source hashed onto a taken one takes it over */
/* In all, whatever the sources (spoofed ones each get a fresh bucket). */
#define RATE_ALL_PER_S 2000
#define BATCH          64 /* datagrams read per wake-up */

struct bucket {
	uint32_t addr;
	double tokens;
	uint64_t at; /* ms of the last refill */
};

struct api_pmtu {
	int fd; /* -1: not listening */
	unsigned port;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	struct bucket sources[RATE_SOURCES];
	struct bucket all;
	unsigned long answered, dropped;
};

struct api_pmtu *api_pmtu_new(void)
{
	struct api_pmtu *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->fd = -1;
	randombytes_buf(p->hash_key, sizeof(p->hash_key));
	return p;
}

static void stop_listening(mg_ctx *ctx, struct api_pmtu *p)
{
	if (p->fd >= 0) {
		mg_fd_unwatch(ctx, p->fd);
		close(p->fd);
	}
	p->fd = -1;
	p->port = 0;
}

void api_pmtu_free(mg_ctx *ctx, struct api_pmtu *p)
{
	if (!p)
		return;
	stop_listening(ctx, p);
	free(p);
}

void api_pmtu_counts(const struct api_pmtu *p, unsigned long *answered, unsigned long *dropped)
{
	*answered = p->answered;
	*dropped = p->dropped;
}

/* Takes a token from b (refilled at per_s, up to burst): false when none. */
static bool take_token(struct bucket *b, uint64_t now, double per_s, double burst)
{
	b->tokens += (double)(now - b->at) * per_s / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	b->at = now;
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

static bool allowed(mg_ctx *ctx, struct api_pmtu *p, uint32_t addr)
{
	uint64_t now = mg_now_ms(ctx), h;
	crypto_shorthash((uint8_t *)&h, (const uint8_t *)&addr, sizeof(addr), p->hash_key);
	struct bucket *b = &p->sources[h % RATE_SOURCES];
	if (b->addr != addr || !b->at)
		*b = (struct bucket){.addr = addr, .tokens = RATE_BURST, .at = now};
	if (!p->all.at)
		p->all = (struct bucket){.tokens = RATE_ALL_PER_S, .at = now};
	return take_token(b, now, RATE_PER_S, RATE_BURST) &&
	       take_token(&p->all, now, RATE_ALL_PER_S, RATE_ALL_PER_S);
}

static void answer_one(mg_ctx *ctx, struct api_pmtu *p, uint8_t *buf, size_t len,
                       const struct sockaddr_in *from)
{
	enum pmtu_probe_type type;
	uint64_t nonce;
	if (pmtu_probe_decode(buf, len, &type, &nonce) || type != PMTU_PROBE ||
	    !allowed(ctx, p, from->sin_addr.s_addr)) {
		p->dropped++;
		return;
	}
	pmtu_probe_encode(PMTU_ANSWER, nonce, len, buf); /* the same length */
	/* too big for our own link (EMSGSIZE): not answered, as the path
	 * would not have carried it either */
	if (sendto(p->fd, buf, len, MSG_DONTWAIT, (const struct sockaddr *)from, sizeof(*from)) ==
	    (ssize_t)len)
		p->answered++;
}

static void on_readable(mg_ctx *ctx, int fd, int events, void *arg)
{
	struct api_pmtu *p = arg;
	(void)events;
	uint8_t *buf = malloc(PMTU_PROBE_MAX + 1);
	if (!buf)
		return;
	for (int i = 0; i < BATCH; i++) {
		struct sockaddr_in from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, PMTU_PROBE_MAX + 1, MSG_DONTWAIT,
		                     (struct sockaddr *)&from, &fromlen);
		if (n < 0)
			break;
		if (from.sin_family == AF_INET)
			answer_one(ctx, p, buf, (size_t)n, &from);
	}
	free(buf);
}

int api_pmtu_listen(mg_ctx *ctx, struct api_pmtu *p, unsigned port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	/* DF on every answer, whatever the kernel learnt of the path: a
	 * fragmented answer would pass a size the path cannot carry whole */
	int probe = IP_PMTUDISC_PROBE;
	if (port == p->port && (p->fd >= 0 || !port))
		return 0;
	stop_listening(ctx, p);
	if (!port)
		return 0;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof(probe)) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int rc = -errno;
		mg_warn(ctx, "no size probes: cannot listen on UDP port %u: %s", port,
		        strerror(-rc));
		close(fd);
		return rc;
	}
	int rc = mg_fd_watch(ctx, fd, MG_FD_READ, on_readable, p);
	if (rc) {
		close(fd);
		return rc;
	}
	p->fd = fd;
	p->port = port;
	mg_info(ctx, "answering size probes (path MTU) on UDP port %u", port);
	return 0;
}
