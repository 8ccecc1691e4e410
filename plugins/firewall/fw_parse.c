/* Text of the policy's parts: prefixes, ports, role and interface names,
 * set names. Everything here is pure. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw.h"

static uint32_t mask_of(uint8_t len)
{
	return len ? ~0u << (32 - len) : 0;
}

int fw_prefix_parse(struct fw_prefix *out, const char *text, int loose)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = text ? strchr(text, '/') : NULL;
	size_t alen = !text ? 0 : slash ? (size_t)(slash - text) : strlen(text);
	struct in_addr in;
	unsigned long len = 32;

	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1)
		return -EINVAL;
	if (slash) {
		char *end;
		/* digits only: strtoul alone would take " 24", "+24" or "" */
		if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 2)
			return -EINVAL;
		len = strtoul(slash + 1, &end, 10);
		if (*end || len > 32)
			return -EINVAL;
	}
	uint32_t a = ntohl(in.s_addr), m = mask_of((uint8_t)len);
	if ((a & ~m) && !loose)
		return -EINVAL;
	out->addr = a & m;
	out->len = (uint8_t)len;
	return 0;
}

void fw_prefix_format(char out[FW_PREFIX_TEXT], const struct fw_prefix *p)
{
	snprintf(out, FW_PREFIX_TEXT, "%u.%u.%u.%u/%u", p->addr >> 24, (p->addr >> 16) & 255,
	         (p->addr >> 8) & 255, p->addr & 255, p->len);
}

int fw_prefix_covers(const struct fw_prefix *outer, uint32_t addr)
{
	return (addr & mask_of(outer->len)) == outer->addr;
}

int fw_port_parse(struct fw_port *out, const char *text)
{
	const char *slash = text ? strchr(text, '/') : NULL;
	char *end;
	if (!slash || text[0] < '0' || text[0] > '9' || slash - text > 5)
		return -EINVAL;
	unsigned long port = strtoul(text, &end, 10);
	if (end != slash || port < 1 || port > 65535)
		return -EINVAL;
	if (!strcmp(slash + 1, "tcp"))
		out->proto = FW_TCP;
	else if (!strcmp(slash + 1, "udp"))
		out->proto = FW_UDP;
	else
		return -EINVAL;
	out->port = (uint16_t)port;
	return 0;
}

void fw_port_format(char out[16], const struct fw_port *p)
{
	snprintf(out, 16, "%u/%s", p->port, p->proto == FW_TCP ? "tcp" : "udp");
}

int fw_role_valid(const char *role)
{
	size_t n = role ? strlen(role) : 0;
	if (n < 1 || n > FW_ROLE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((role[i] >= 'a' && role[i] <= 'z') || (role[i] >= '0' && role[i] <= '9') ||
		      role[i] == '-'))
			return 0;
	return 1;
}

/* What iptables accepts after -i/-o, minus its wildcard '+' and the
 * characters a shell or our own text format would trip on. */
int fw_ifname_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n >= IF_NAMESIZE)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '@'))
			return 0;
	}
	return strcmp(name, ".") && strcmp(name, "..");
}

void fw_set_name(char out[FW_SETNAME_MAX], const char *role)
{
	size_t room = FW_SETNAME_MAX - 1 - strlen(FW_PREFIX);
	if (strlen(role) <= room) {
		snprintf(out, FW_SETNAME_MAX, "%s%s", FW_PREFIX, role);
		return;
	}
	/* FNV-1a: stable across builds and restarts, which is all it needs */
	uint32_t h = 2166136261u;
	for (const char *c = role; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	snprintf(out, FW_SETNAME_MAX, "%s%.*s-%08x", FW_PREFIX, (int)(room - 9), role, h);
}

void fw_buf_printf(struct fw_buf *b, const char *fmt, ...)
{
	va_list ap;
	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d) {
			b->oom = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
}

void fw_buf_free(struct fw_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void fw_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}
