/* Addresses, ports and prefixes as the settings and the records write them. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

static int parse_port(const char *text, uint16_t *port)
{
	char *end;
	if (!*text || strspn(text, "0123456789") != strlen(text))
		return -EINVAL;
	unsigned long v = strtoul(text, &end, 10);
	if (v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int dns_sockaddr_parse(const char *text, uint16_t default_port, struct sockaddr_storage *ss,
                       socklen_t *sslen)
{
	char host[64];
	uint16_t port = default_port;
	const char *colon;

	if (!text || strlen(text) >= sizeof(host))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') { /* [v6]:port */
		const char *close = strchr(text, ']');
		if (!close || (close[1] && (close[1] != ':' || parse_port(close + 2, &port))))
			return -EINVAL;
		snprintf(host, sizeof(host), "%.*s", (int)(close - text - 1), text + 1);
	} else if ((colon = strchr(text, ':')) && !strchr(colon + 1, ':')) { /* v4:port */
		if (parse_port(colon + 1, &port))
			return -EINVAL;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - text), text);
	} else {
		snprintf(host, sizeof(host), "%s", text);
	}
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		*sslen = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*sslen = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

void dns_sockaddr_text(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, len, "?");
	}
}

int dns_ip_parse(const char *text, int *family, uint8_t addr[16])
{
	char buf[64];
	const char *slash;
	if (!text)
		return -EINVAL;
	slash = strchr(text, '/');
	snprintf(buf, sizeof(buf), "%.*s", slash ? (int)(slash - text) : (int)strlen(text), text);
	if (inet_pton(AF_INET, buf, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		*family = AF_INET6;
	else
		return -EINVAL;
	return 0;
}

int dns_prefix_parse(const char *text, struct dns_prefix *p)
{
	const char *slash = text ? strchr(text, '/') : NULL;
	uint16_t len;
	memset(p, 0, sizeof(*p));
	if (dns_ip_parse(text, &p->family, p->addr))
		return -EINVAL;
	int max = p->family == AF_INET ? 32 : 128;
	if (!slash)
		len = (uint16_t)max;
	else if (parse_port(slash + 1, &len) || len > max)
		return -EINVAL;
	p->len = len;
	/* keep only the network bits: the host part must not matter */
	for (int bit = p->len; bit < max; bit++)
		p->addr[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
	return 0;
}

static int bits_equal(const uint8_t *a, const uint8_t *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)bytes))
		return 0;
	if (!rest)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int dns_prefix_has(const struct dns_prefix *p, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const uint8_t *addr;
	int family = sa->sa_family;
	if (family == AF_INET) {
		addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (!memcmp(addr, mapped, sizeof(mapped))) {
			addr += 12;
			family = AF_INET;
		}
	} else {
		return 0;
	}
	return family == p->family && bits_equal(addr, p->addr, p->len);
}
