/* Addresses as the gateway sends them: prefixes ("10.0.0.2/32") and
 * endpoints ("host:port", "[v6]:port"). Strict parsers, because every string
 * here arrives from the network. */
#ifndef MESHGATE_CLIENT_NETADDR_H
#define MESHGATE_CLIENT_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest text of a prefix: a full IPv6 address, "/128" and the NUL. */
#define CL_PREFIX_STRLEN 50
/* A DNS name is at most 253 characters. */
#define CL_HOST_MAX        254
#define CL_ENDPOINT_STRLEN (CL_HOST_MAX + 8)

struct cl_prefix {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t len;
};

struct cl_endpoint {
	char host[CL_HOST_MAX]; /* a DNS name or an IP literal, without brackets */
	uint16_t port;
};

/* "ADDR/LEN" (LEN required when require_len, else ADDR alone is a host).
 * Returns 0 or -EINVAL. */
int cl_prefix_parse(const char *text, bool require_len, struct cl_prefix *out);
/* Writes "ADDR/LEN" into buf (CL_PREFIX_STRLEN is always enough). */
int cl_prefix_format(const struct cl_prefix *p, char *buf, size_t size);
/* Clears the host bits, as a route needs. */
void cl_prefix_mask(struct cl_prefix *p);
/* True when every address of inner is in outer. */
bool cl_prefix_covers(const struct cl_prefix *outer, const struct cl_prefix *inner);

/* A DNS name (letters, digits, '-', '.') of at most 253 characters. */
bool cl_hostname_valid(const char *name);
/* "HOST:PORT" or "[V6]:PORT", port 1..65535. Returns 0 or -EINVAL. */
int cl_endpoint_parse(const char *text, struct cl_endpoint *out);
int cl_endpoint_format(const struct cl_endpoint *e, char *buf, size_t size);
bool cl_endpoint_equal(const struct cl_endpoint *a, const struct cl_endpoint *b);

/* The API's address inside the tunnel, as the gateway tells it:
 * "https://IP:PORT" or "https://[IPV6]:PORT", an IP literal and nothing
 * after the port. Returns 0 or -EINVAL. */
int cl_vpn_api_parse(const char *text, struct cl_endpoint *out);

/* Same family, length and network (host bits ignored). */
bool cl_prefix_equal(const struct cl_prefix *a, const struct cl_prefix *b);
/* The prefixes of a that are not in b, in a's order, each once, into out
 * (room for na). Returns how many. */
size_t cl_prefix_minus(const struct cl_prefix *a, size_t na, const struct cl_prefix *b, size_t nb,
                       struct cl_prefix *out);
/* The routes a tunnel with this address and these allowed IPs needs
 * through its interface, into out (room for 2 n): one per allowed IP,
 * host bits cleared, but none for what the address's own prefix covers,
 * and a default route as two /1 halves. Returns how many. */
size_t cl_routes_for(const struct cl_prefix *address, const struct cl_prefix *allowed, size_t n,
                     struct cl_prefix *out);

#endif
