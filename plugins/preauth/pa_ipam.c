/* The pool of device addresses: a bitmap of the subnet, rebuilt from the
 * `ipam` database (the truth), so that finding the lowest free address
 * never walks the devices. A hint remembers the first word that may have
 * a free bit: with addresses handed out in order it stays at the
 * frontier, and a release below it moves it back. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preauth.h"

/* A /8 is 2 MiB of bitmap; a bigger VPN subnet is a mistake. */
#define PREFIX_MIN 8
/* A /31 or /32 has no address besides the server's. */
#define PREFIX_MAX 30

struct pa_ipam {
	uint32_t network;
	uint32_t size; /* addresses in the subnet, reserved ones included */
	uint32_t gateway;
	uint32_t reserved;
	uint32_t taken;
	size_t words;
	size_t hint;
	int spread;     /* pa_ipam_spread: start at `cursor`, not at the lowest */
	size_t cursor;  /* the word the last address of this node came from */
	uint64_t *bits; /* bit i: network + i is reserved or taken */
	char server_address[32];
	char subnet[PA_SUBNET_TEXT_MAX];
};

int pa_ip_parse(const char *text, int allow_host_prefix, uint32_t *addr)
{
	char buf[16];
	struct in_addr in;
	size_t n = text ? strcspn(text, "/") : 0;

	if (!text || n == 0 || n >= sizeof(buf))
		return -EINVAL;
	if (text[n] && !(allow_host_prefix && !strcmp(text + n, "/32")))
		return -EINVAL;
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, &in) != 1)
		return -EINVAL;
	*addr = ntohl(in.s_addr);
	return 0;
}

void pa_ip_format(uint32_t addr, char buf[16])
{
	struct in_addr in = {htonl(addr)};
	inet_ntop(AF_INET, &in, buf, 16);
}

static void set_bit(struct pa_ipam *p, uint32_t i)
{
	p->bits[i / 64] |= 1ULL << (i % 64);
}
static void clear_bit(struct pa_ipam *p, uint32_t i)
{
	p->bits[i / 64] &= ~(1ULL << (i % 64));
}
static int test_bit(const struct pa_ipam *p, uint32_t i)
{
	return (p->bits[i / 64] >> (i % 64)) & 1;
}

/* "10.0.0.1/24" -> the gateway 10.0.0.1 and the prefix 24, or -EINVAL
 * with a message. */
static int server_address_parse(const char *server_address, uint32_t *gw, long *prefix, char *err,
                                size_t errlen)
{
	char host[32];
	const char *slash = server_address ? strchr(server_address, '/') : NULL;
	char *end;

	if (!slash || (size_t)(slash - server_address) >= sizeof(host)) {
		snprintf(err, errlen, "server address \"%.40s\" is not ADDRESS/PREFIX",
		         server_address ? server_address : "");
		return -EINVAL;
	}
	memcpy(host, server_address, (size_t)(slash - server_address));
	host[slash - server_address] = '\0';
	*prefix = strtol(slash + 1, &end, 10);
	if (pa_ip_parse(host, 0, gw) || *end || end == slash + 1 || *prefix < PREFIX_MIN ||
	    *prefix > PREFIX_MAX) {
		snprintf(err, errlen,
		         "server address \"%.40s\" must be an IPv4 ADDRESS/PREFIX with a prefix of "
		         "/%d to /%d",
		         server_address, PREFIX_MIN, PREFIX_MAX);
		return -EINVAL;
	}
	return 0;
}

static void subnet_format(uint32_t gw, long prefix, char out[PA_SUBNET_TEXT_MAX])
{
	char net[16];
	pa_ip_format(gw & ~((1U << (32 - prefix)) - 1), net);
	snprintf(out, PA_SUBNET_TEXT_MAX, "%s/%ld", net, prefix);
}

int pa_vpn_subnet(const char *server_address, char out[PA_SUBNET_TEXT_MAX])
{
	uint32_t gw;
	long prefix;
	char err[128];
	if (server_address_parse(server_address, &gw, &prefix, err, sizeof(err)))
		return -EINVAL;
	subnet_format(gw, prefix, out);
	return 0;
}

struct pa_ipam *pa_ipam_new(const char *server_address, char *err, size_t errlen)
{
	uint32_t gw;
	long prefix;

	if (server_address_parse(server_address, &gw, &prefix, err, errlen))
		return NULL;
	struct pa_ipam *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->size = 1U << (32 - prefix);
	p->network = gw & ~(p->size - 1);
	p->gateway = gw;
	p->words = (p->size + 63) / 64;
	if (!(p->bits = calloc(p->words, sizeof(*p->bits)))) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* bits past the end of a small subnet count as used */
	for (uint32_t i = p->size; i < p->words * 64; i++)
		p->bits[i / 64] |= 1ULL << (i % 64);
	set_bit(p, 0);
	set_bit(p, p->size - 1);
	p->reserved = 2;
	if (p->gateway != p->network && p->gateway != p->network + p->size - 1) {
		set_bit(p, p->gateway - p->network);
		p->reserved++;
	}
	snprintf(p->server_address, sizeof(p->server_address), "%s", server_address);
	subnet_format(gw, prefix, p->subnet);
	return p;
}

void pa_ipam_free(struct pa_ipam *p)
{
	if (!p)
		return;
	free(p->bits);
	free(p);
}

const char *pa_ipam_server_address(const struct pa_ipam *p)
{
	return p->server_address;
}
const char *pa_ipam_subnet(const struct pa_ipam *p)
{
	return p->subnet;
}

static int reserved(const struct pa_ipam *p, uint32_t i)
{
	return i == 0 || i == p->size - 1 || i == p->gateway - p->network;
}

int pa_ipam_take(struct pa_ipam *p, uint32_t addr)
{
	uint32_t i = addr - p->network;
	if (addr < p->network || i >= p->size || reserved(p, i))
		return -ERANGE;
	if (test_bit(p, i))
		return -EEXIST;
	set_bit(p, i);
	p->taken++;
	return 0;
}

void pa_ipam_release(struct pa_ipam *p, uint32_t addr)
{
	uint32_t i = addr - p->network;
	if (addr < p->network || i >= p->size || reserved(p, i) || !test_bit(p, i))
		return;
	clear_bit(p, i);
	p->taken--;
	if (i / 64 < p->hint)
		p->hint = i / 64;
}

void pa_ipam_spread(struct pa_ipam *p, const char *node)
{
	uint32_t hash = 2166136261u; /* FNV-1a: any even spread of names will do */
	for (const unsigned char *c = (const unsigned char *)node; *c; c++)
		hash = (hash ^ *c) * 16777619u;
	p->spread = 1;
	p->cursor = hash % p->words;
}

int pa_ipam_next_free(struct pa_ipam *p, uint32_t *addr)
{
	if (!p->spread)
		return pa_ipam_lowest_free(p, addr);
	for (size_t n = 0; n < p->words; n++) {
		size_t w = (p->cursor + n) % p->words;
		if (p->bits[w] != ~0ULL) {
			p->cursor = w;
			*addr = p->network + (uint32_t)(w * 64) +
			        (uint32_t)__builtin_ctzll(~p->bits[w]);
			return 0;
		}
	}
	return -ENOSPC;
}

int pa_ipam_lowest_free(struct pa_ipam *p, uint32_t *addr)
{
	while (p->hint < p->words && p->bits[p->hint] == ~0ULL)
		p->hint++;
	if (p->hint == p->words)
		return -ENOSPC;
	uint64_t free_bits = ~p->bits[p->hint];
	*addr = p->network + (uint32_t)(p->hint * 64) + (uint32_t)__builtin_ctzll(free_bits);
	return 0;
}

uint32_t pa_ipam_free_count(const struct pa_ipam *p)
{
	return p->size - p->reserved - p->taken;
}
uint32_t pa_ipam_capacity(const struct pa_ipam *p)
{
	return p->size - p->reserved;
}
