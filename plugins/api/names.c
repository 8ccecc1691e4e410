/* Addresses and names: the listen address, the host of the wireguard
 * endpoint and the names a server certificate is made for. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int parse_port(const char *s, unsigned *port)
{
	unsigned long v = 0;
	if (!*s || strlen(s) > 5)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (unsigned)v;
	return 0;
}

int api_parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *addrlen,
                     char *why, size_t whylen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *hstart = listen;
	size_t hlen;
	unsigned port;

	if (!listen || !*listen)
		return fail(why, whylen, "listen address is empty");
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return fail(why, whylen, "listen \"%s\": expected [IPV6]:PORT", listen);
		hstart = listen + 1;
		hlen = (size_t)(close - hstart);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
			return fail(why, whylen,
			            "listen \"%s\": expected ADDR:PORT (IPv6 as [ADDR]:PORT)",
			            listen);
		hlen = (size_t)(colon - listen);
	}
	if (parse_port(colon + 1, &port))
		return fail(why, whylen, "listen \"%s\": bad port", listen);
	if (hlen == 0 || hlen >= sizeof(host))
		return fail(why, whylen, "listen \"%s\": bad address", listen);
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';

	memset(addr, 0, sizeof(*addr));
	struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
	if (listen[0] != '[' && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*addrlen = sizeof(*in4);
		return 0;
	}
	if (listen[0] == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*addrlen = sizeof(*in6);
		return 0;
	}
	return fail(why, whylen, "listen \"%s\": \"%s\" is not a numeric IP address", listen, host);
}

int api_addr_is_any(const struct sockaddr_storage *addr)
{
	if (addr->ss_family == AF_INET)
		return ((const struct sockaddr_in *)addr)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (addr->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)addr)->sin6_addr);
	return 0;
}

int api_endpoint_host(const char *endpoint, char *host, size_t len)
{
	const char *start = endpoint, *end;
	if (!endpoint || !*endpoint)
		return -EINVAL;
	if (endpoint[0] == '[') {
		start = endpoint + 1;
		end = strchr(start, ']');
		if (!end)
			return -EINVAL;
	} else {
		const char *colon = strchr(endpoint, ':');
		if (colon && strchr(colon + 1, ':'))
			end = endpoint + strlen(endpoint); /* a bare IPv6 address */
		else
			end = colon ? colon : endpoint + strlen(endpoint);
	}
	size_t n = (size_t)(end - start);
	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(host, start, n);
	host[n] = '\0';
	return 0;
}

/* RFC 1123 host names; a leading "*." label makes a wildcard. */
static int dns_name_valid(const char *name)
{
	size_t len = strlen(name), label = 0;
	if (len == 0 || len > API_HOSTNAME_MAX)
		return 0;
	if (!strncmp(name, "*.", 2))
		name += 2;
	if (!*name)
		return 0;
	for (const char *p = name;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63 || p[-1] == '-')
				return 0;
			if (*p == '\0')
				return 1;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
		if (label == 0 && *p == '-')
			return 0;
		label++;
	}
}

int api_name_kind(const char *name, unsigned char ip[16], size_t *iplen)
{
	unsigned char buf[16];
	size_t dummy;
	if (!ip)
		ip = buf;
	if (!iplen)
		iplen = &dummy;
	if (!name)
		return -EINVAL;
	if (inet_pton(AF_INET, name, ip) == 1) {
		*iplen = 4;
		return API_NAME_IP;
	}
	if (inet_pton(AF_INET6, name, ip) == 1) {
		*iplen = 16;
		return API_NAME_IP;
	}
	/* all digits and dots but not an IPv4 address: a typo, not a name */
	if (strspn(name, "0123456789.") == strlen(name))
		return -EINVAL;
	return dns_name_valid(name) ? API_NAME_DNS : -EINVAL;
}

int api_name_canonical(const char *name, char *out, size_t len)
{
	unsigned char ip[16];
	size_t iplen;
	int kind = api_name_kind(name, ip, &iplen);
	if (kind < 0)
		return kind;
	if (kind == API_NAME_IP)
		return inet_ntop(iplen == 4 ? AF_INET : AF_INET6, ip, out, (socklen_t)len)
		           ? 0
		           : -ENOSPC;
	if (strlen(name) >= len)
		return -ENOSPC;
	for (size_t i = 0; name[i]; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[strlen(name)] = '\0';
	return 0;
}

int api_names_check(json_t *names, char *why, size_t whylen)
{
	size_t i;
	json_t *v;
	if (!json_is_array(names) || json_array_size(names) == 0)
		return fail(why, whylen, "names must be a non-empty list of DNS names and IPs");
	json_array_foreach(names, i, v)
	{
		const char *name = json_string_value(v);
		if (api_name_kind(name, NULL, NULL) < 0)
			return fail(why, whylen,
			            "api.names[%zu] \"%s\" is neither a DNS name nor an IP address",
			            i, name ? name : "");
	}
	return 0;
}

json_t *api_default_names(json_t *wg_server, const char *listen)
{
	char host[API_HOSTNAME_MAX + 1];
	const char *endpoint = json_string_value(json_object_get(wg_server, "endpoint"));
	if (endpoint && !api_endpoint_host(endpoint, host, sizeof(host)) &&
	    api_name_kind(host, NULL, NULL) > 0)
		return json_pack("[s]", host);

	struct sockaddr_storage addr;
	socklen_t addrlen;
	if (listen && !api_parse_listen(listen, &addr, &addrlen, NULL, 0) &&
	    !api_addr_is_any(&addr) && !api_endpoint_host(listen, host, sizeof(host)))
		return json_pack("[s]", host);
	return json_pack("[s, s, s]", "localhost", "127.0.0.1", "::1");
}

/* ---- the VPN side ---- */

int api_vpn_gateway(json_t *wg_server, char *host, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *address = json_string_value(json_object_get(wg_server, "address"));
	if (!address)
		return -ENOENT;
	const char *slash = strchr(address, '/');
	size_t n = slash ? (size_t)(slash - address) : strlen(address);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	if (slash && (!slash[1] || strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
	              strlen(slash + 1) > 3))
		return -EINVAL;
	memcpy(buf, address, n);
	buf[n] = '\0';
	if (api_name_kind(buf, NULL, NULL) != API_NAME_IP)
		return -EINVAL;
	return api_name_canonical(buf, host, len);
}

static int has_name(json_t *names, const char *canonical)
{
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v)
	{
		char c[API_HOSTNAME_MAX + 1];
		if (!api_name_canonical(json_string_value(v), c, sizeof(c)) &&
		    !strcmp(c, canonical))
			return 1;
	}
	return 0;
}

json_t *api_cert_names(json_t *configured, json_t *wg_server, const char *listen)
{
	char gw[INET6_ADDRSTRLEN];
	json_t *names =
	    configured ? json_deep_copy(configured) : api_default_names(wg_server, listen);
	if (names && !api_vpn_gateway(wg_server, gw, sizeof(gw)) && !has_name(names, gw))
		json_array_append_new(names, json_string(gw));
	return names;
}

/* An address as 16 bytes (IPv4 mapped into IPv6, so that both compare). */
static int ip_bytes(const char *text, unsigned char out[16], int *v4)
{
	unsigned char b[16];
	if (inet_pton(AF_INET, text, b) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, b, 4);
		*v4 = 1;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out) == 1) {
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		*v4 = !memcmp(out, mapped, sizeof(mapped));
		return 0;
	}
	return -EINVAL;
}

int api_ip_in_prefix(const char *ip, const char *prefix)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char a[16], p[16];
	int a4, p4;
	if (!ip || !prefix)
		return -EINVAL;
	const char *slash = strchr(prefix, '/');
	size_t n = slash ? (size_t)(slash - prefix) : strlen(prefix);
	if (!slash || n == 0 || n >= sizeof(host) || !slash[1] || strlen(slash + 1) > 3 ||
	    strspn(slash + 1, "0123456789") != strlen(slash + 1))
		return -EINVAL;
	memcpy(host, prefix, n);
	host[n] = '\0';
	unsigned len = (unsigned)atoi(slash + 1);
	if (ip_bytes(ip, a, &a4) || ip_bytes(host, p, &p4) || len > (p4 ? 32u : 128u))
		return -EINVAL;
	if (a4 != p4)
		return 0;
	unsigned bits = p4 ? len + 96 : len;
	for (unsigned i = 0; i < bits; i++) {
		unsigned char mask = (unsigned char)(0x80 >> (i % 8));
		if ((a[i / 8] & mask) != (p[i / 8] & mask))
			return 0;
	}
	return 1;
}

int api_vpn_access(const char *listen, const char *gateway, int vpn_listen, char *extra,
                   size_t extra_len, char *url, size_t url_len)
{
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned char gw[16];
	if (extra_len)
		extra[0] = '\0';
	if (url_len)
		url[0] = '\0';
	if (!gateway || api_parse_listen(listen, &addr, &addrlen, NULL, 0))
		return 0;
	int gw4 = inet_pton(AF_INET, gateway, gw) == 1;
	if (!gw4 && inet_pton(AF_INET6, gateway, gw) != 1)
		return 0;
	unsigned port = addr.ss_family == AF_INET
	                    ? ntohs(((struct sockaddr_in *)&addr)->sin_port)
	                    : ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
	int covered;
	if (addr.ss_family == AF_INET)
		covered = gw4 && (api_addr_is_any(&addr) ||
		                  !memcmp(&((struct sockaddr_in *)&addr)->sin_addr, gw, 4));
	else /* "[::]" is dual-stack (IPV6_V6ONLY off) */
		covered = api_addr_is_any(&addr) ||
		          (!gw4 && !memcmp(&((struct sockaddr_in6 *)&addr)->sin6_addr, gw, 16));
	if (!covered && !vpn_listen)
		return 0;
	const char *fmt = gw4 ? "%s:%u" : "[%s]:%u";
	if (!covered)
		snprintf(extra, extra_len, fmt, gateway, port);
	snprintf(url, url_len, gw4 ? "https://%s:%u" : "https://[%s]:%u", gateway, port);
	return 1;
}
