/* Names: text and wire forms, device labels, reverse names. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dns.h"

static int label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int dns_name_from_text(const char *text, uint8_t *wire, size_t *len)
{
	size_t n = 0, tlen = text ? strlen(text) : 0;
	if (tlen && text[tlen - 1] == '.')
		tlen--;
	if (!tlen)
		return -EINVAL;
	for (size_t start = 0; start <= tlen;) {
		const char *dot = memchr(text + start, '.', tlen - start);
		size_t end = dot ? (size_t)(dot - text) : tlen;
		size_t llen = end - start;
		if (!llen || llen > DNS_LABEL_MAX || n + 1 + llen + 1 > DNS_NAME_MAX)
			return -EINVAL;
		wire[n++] = (uint8_t)llen;
		for (size_t i = start; i < end; i++) {
			char c = text[i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (!label_char(c))
				return -EINVAL;
			wire[n++] = (uint8_t)c;
		}
		if (text[start] == '-' || text[end - 1] == '-')
			return -EINVAL;
		start = end + 1;
	}
	wire[n++] = 0;
	*len = n;
	return 0;
}

void dns_name_to_text(const uint8_t *wire, size_t len, char *out, size_t outlen)
{
	size_t o = 0, i = 0;
	if (!outlen)
		return;
	while (i < len && wire[i] && o + 1 < outlen) {
		size_t llen = wire[i++];
		if (o)
			out[o++] = '.';
		for (size_t k = 0; k < llen && i < len && o + 5 < outlen; k++, i++) {
			uint8_t c = wire[i];
			if (c > 0x20 && c < 0x7f && c != '.' && c != '\\')
				out[o++] = (char)c;
			else
				o += (size_t)snprintf(out + o, outlen - o, "\\%03u", c);
		}
	}
	if (!o && o + 1 < outlen)
		out[o++] = '.';
	out[o < outlen ? o : outlen - 1] = '\0';
}

int dns_name_labels(const uint8_t *wire, size_t len)
{
	int n = 0;
	for (size_t i = 0; i < len && wire[i]; i += 1 + wire[i])
		n++;
	return n;
}

int dns_name_concat(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t *out,
                    size_t *outlen)
{
	/* a without its root label, then b */
	if (!alen || alen - 1 + blen > DNS_NAME_MAX)
		return -ENAMETOOLONG;
	memmove(out, a, alen - 1);
	memmove(out + alen - 1, b, blen);
	*outlen = alen - 1 + blen;
	return 0;
}

/* Lowercase [a-z0-9], anything else as one '-', no '-' at either end. */
static size_t sanitize(const char *in, char *out, size_t max)
{
	size_t n = 0;
	int dash = 0;
	for (const char *p = in ? in : ""; *p && n < max; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (dash && n)
				out[n++] = '-';
			if (n < max)
				out[n++] = c;
			dash = 0;
		} else {
			dash = 1;
		}
	}
	out[n] = '\0';
	return n;
}

void dns_device_label(const char *name, const char *user, char out[DNS_LABEL_MAX + 1])
{
	if (sanitize(name, out, DNS_LABEL_MAX))
		return;
	if (sanitize(user, out, DNS_LABEL_MAX))
		return;
	snprintf(out, DNS_LABEL_MAX + 1, "device");
}

void dns_device_fallback(const char *label, const char *id, char out[DNS_LABEL_MAX + 1])
{
	char sid[DNS_LABEL_MAX + 1], lab[DNS_LABEL_MAX + 1];
	size_t idlen = sanitize(id, sid, 16);
	size_t keep = DNS_LABEL_MAX - 1 - (idlen ? idlen : 1);
	snprintf(lab, sizeof(lab), "%s", label); /* out may be label */
	size_t llen = strlen(lab);
	if (llen > keep)
		llen = keep;
	while (llen && lab[llen - 1] == '-')
		llen--;
	snprintf(out, DNS_LABEL_MAX + 1, "%.*s-%s", (int)llen, lab, idlen ? sid : "0");
}

static size_t put_label(uint8_t *wire, size_t n, const char *text)
{
	size_t l = strlen(text);
	wire[n++] = (uint8_t)l;
	memcpy(wire + n, text, l);
	return n + l;
}

int dns_reverse_name(int family, const void *addr, uint8_t *wire, size_t *len)
{
	const uint8_t *a = addr;
	size_t n = 0;
	char buf[8];
	if (family == AF_INET) {
		for (int i = 3; i >= 0; i--) {
			snprintf(buf, sizeof(buf), "%u", a[i]);
			n = put_label(wire, n, buf);
		}
		n = put_label(wire, n, "in-addr");
	} else if (family == AF_INET6) {
		static const char hex[] = "0123456789abcdef";
		for (int i = 15; i >= 0; i--) {
			wire[n++] = 1;
			wire[n++] = (uint8_t)hex[a[i] & 0xf];
			wire[n++] = 1;
			wire[n++] = (uint8_t)hex[a[i] >> 4];
		}
		n = put_label(wire, n, "ip6");
	} else {
		return -EAFNOSUPPORT;
	}
	n = put_label(wire, n, "arpa");
	wire[n++] = 0;
	*len = n;
	return 0;
}

int dns_relative_name(const char *given, const char *zone_text, char *out, size_t outlen)
{
	char text[DNS_TEXT_MAX];
	uint8_t wire[DNS_NAME_MAX];
	size_t len = given ? strlen(given) : 0, zlen = strlen(zone_text), wlen;
	if (!len || len >= sizeof(text))
		return -EINVAL;
	memcpy(text, given, len + 1);
	if (text[len - 1] == '.')
		text[--len] = '\0';
	if (len > zlen + 1 && text[len - zlen - 1] == '.' &&
	    !strcasecmp(text + len - zlen, zone_text))
		text[len -= zlen + 1] = '\0';
	if (!len || text[len - 1] == '.' || dns_name_from_text(text, wire, &wlen))
		return -EINVAL;
	dns_name_to_text(wire, wlen, out, outlen);
	return 0;
}
