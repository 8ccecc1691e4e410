#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* A decimal without sign, leading zeros or trailing junk, at most max. */
static int parse_small_uint(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	if (!*s || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_ip(const char *text, struct cl_prefix *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, out->addr) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->addr) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

static unsigned max_len(int family)
{
	return family == AF_INET ? 32 : 128;
}

int cl_prefix_parse(const char *text, bool require_len, struct cl_prefix *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned len;

	if (alen == 0 || alen >= sizeof(addr) || (!slash && require_len))
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (parse_ip(addr, out))
		return -EINVAL;
	if (!slash) {
		out->len = (uint8_t)max_len(out->family);
		return 0;
	}
	if (parse_small_uint(slash + 1, max_len(out->family), &len))
		return -EINVAL;
	out->len = (uint8_t)len;
	return 0;
}

int cl_prefix_format(const struct cl_prefix *p, char *buf, size_t size)
{
	char addr[INET6_ADDRSTRLEN];
	if (!inet_ntop(p->family, p->addr, addr, sizeof(addr)))
		return -EINVAL;
	int n = snprintf(buf, size, "%s/%u", addr, p->len);
	return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

void cl_prefix_mask(struct cl_prefix *p)
{
	unsigned bytes = max_len(p->family) / 8;
	for (unsigned i = 0; i < bytes; i++) {
		unsigned first_bit = i * 8;
		if (first_bit >= p->len)
			p->addr[i] = 0;
		else if (p->len - first_bit < 8)
			p->addr[i] &= (uint8_t)(0xff << (8 - (p->len - first_bit)));
	}
}

bool cl_prefix_covers(const struct cl_prefix *outer, const struct cl_prefix *inner)
{
	if (outer->family != inner->family || outer->len > inner->len)
		return false;
	struct cl_prefix a = *outer, b = *inner;
	b.len = a.len;
	cl_prefix_mask(&a);
	cl_prefix_mask(&b);
	return memcmp(a.addr, b.addr, sizeof(a.addr)) == 0;
}

bool cl_hostname_valid(const char *name)
{
	size_t n = strlen(name), label = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0 || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return name[n - 1] != '-';
}

int cl_endpoint_parse(const char *text, struct cl_endpoint *out)
{
	const char *host = text, *colon;
	size_t hlen;
	unsigned port;
	struct cl_prefix ip;

	memset(out, 0, sizeof(*out));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		host = text + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - text);
	}
	if (hlen == 0 || hlen >= sizeof(out->host))
		return -EINVAL;
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if (parse_small_uint(colon + 1, 65535, &port) || port == 0)
		return -EINVAL;
	out->port = (uint16_t)port;

	/* A v6 literal must be bracketed, and brackets hold only a v6 literal. */
	bool is_ip = parse_ip(out->host, &ip) == 0;
	if (text[0] == '[')
		return is_ip && ip.family == AF_INET6 ? 0 : -EINVAL;
	if (is_ip)
		return ip.family == AF_INET ? 0 : -EINVAL;
	return cl_hostname_valid(out->host) ? 0 : -EINVAL;
}

int cl_endpoint_format(const struct cl_endpoint *e, char *buf, size_t size)
{
	int n = strchr(e->host, ':') ? snprintf(buf, size, "[%s]:%u", e->host, e->port)
	                             : snprintf(buf, size, "%s:%u", e->host, e->port);
	return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

bool cl_endpoint_equal(const struct cl_endpoint *a, const struct cl_endpoint *b)
{
	return a->port == b->port && !strcmp(a->host, b->host);
}

int cl_vpn_api_parse(const char *text, struct cl_endpoint *out)
{
	static const char scheme[] = "https://";
	struct cl_prefix ip;
	if (!text || strncmp(text, scheme, sizeof(scheme) - 1) ||
	    cl_endpoint_parse(text + sizeof(scheme) - 1, out))
		return -EINVAL;
	/* an address inside the tunnel: a literal, never a name to resolve */
	return parse_ip(out->host, &ip) == 0 ? 0 : -EINVAL;
}

bool cl_prefix_equal(const struct cl_prefix *a, const struct cl_prefix *b)
{
	return a->family == b->family && a->len == b->len && cl_prefix_covers(a, b);
}

size_t cl_prefix_minus(const struct cl_prefix *a, size_t na, const struct cl_prefix *b, size_t nb,
                       struct cl_prefix *out)
{
	size_t n = 0;
	for (size_t i = 0; i < na; i++) {
		bool found = false;
		for (size_t j = 0; j < nb && !found; j++)
			found = cl_prefix_equal(&a[i], &b[j]);
		for (size_t j = 0; j < n && !found; j++)
			found = cl_prefix_equal(&a[i], &out[j]);
		if (!found)
			out[n++] = a[i];
	}
	return n;
}

size_t cl_routes_for(const struct cl_prefix *address, const struct cl_prefix *allowed, size_t n,
                     struct cl_prefix *out)
{
	struct cl_prefix own = *address;
	size_t count = 0;
	cl_prefix_mask(&own);
	for (size_t i = 0; i < n; i++) {
		struct cl_prefix dst = allowed[i];
		cl_prefix_mask(&dst);
		if (cl_prefix_covers(&own, &dst))
			continue;
		if (dst.len > 0) {
			out[count++] = dst;
			continue;
		}
		/* two halves win over the default route without replacing it */
		dst.len = 1;
		out[count++] = dst;
		dst.addr[0] = 0x80;
		out[count++] = dst;
	}
	return count;
}
