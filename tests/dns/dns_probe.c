/* Malformed packets against a running server, for dns_integration.sh:
 * random bytes and cut headers (from a socket of their own: their replies
 * are not waited for), a query with qdcount 0 and one with 5 (FORMERR),
 * one with a huge EDNS size (capped at 1232: a big answer is truncated),
 * and then a plain query that must still be answered.
 * usage: dns_probe SERVER_IP   (port 53; exit 0 when all hold) */
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in server;

static size_t put_name(uint8_t *out, const char *name)
{
	size_t n = 0;
	for (const char *p = name; *p;) {
		size_t l = strcspn(p, ".");
		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (p[l] == '.');
	}
	out[n++] = 0;
	return n;
}

/* header, then (qd > 0) the question, then (edns >= 0) an OPT */
static size_t query(uint8_t *out, uint16_t id, uint16_t qd, const char *name, int edns)
{
	uint8_t hdr[12] = {(uint8_t)(id >> 8),
	                   (uint8_t)id,
	                   0x01,
	                   0,
	                   (uint8_t)(qd >> 8),
	                   (uint8_t)qd,
	                   0,
	                   0,
	                   0,
	                   0,
	                   0,
	                   edns >= 0 ? 1 : 0};
	memcpy(out, hdr, 12);
	size_t n = 12;
	if (qd) {
		n += put_name(out + n, name);
		memcpy(out + n, "\0\1\0\1", 4); /* A, IN */
		n += 4;
	}
	if (edns >= 0) {
		uint8_t opt[11] = {0, 0, 41, (uint8_t)(edns >> 8), (uint8_t)edns, 0, 0, 0, 0, 0, 0};
		memcpy(out + n, opt, 11);
		n += 11;
	}
	return n;
}

/* The reply with the query's id (UDP may lose one: three tries). */
static ssize_t ask(int fd, const uint8_t *q, size_t len, uint8_t *r, size_t cap)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		sendto(fd, q, len, 0, (struct sockaddr *)&server, sizeof(server));
		struct pollfd p = {fd, POLLIN, 0};
		while (poll(&p, 1, 1000) == 1) {
			ssize_t n = recv(fd, r, cap, 0);
			if (n >= 12 && r[0] == q[0] && r[1] == q[1])
				return n;
		}
	}
	return -1;
}

static int fail(const char *what)
{
	fprintf(stderr, "dns_probe: %s\n", what);
	return 1;
}

int main(int argc, char **argv)
{
	uint8_t q[1024], r[65536];
	server.sin_family = AF_INET;
	server.sin_port = htons(53);
	if (argc != 2 || inet_pton(AF_INET, argv[1], &server.sin_addr) != 1)
		return fail("usage: dns_probe SERVER_IP");
	int fd = socket(AF_INET, SOCK_DGRAM, 0), junk = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || junk < 0)
		return fail("socket");

	unsigned seed = 7;
	for (int i = 0; i < 300; i++) { /* random bytes */
		size_t len = (size_t)(rand_r(&seed) % 600);
		for (size_t k = 0; k < len; k++)
			q[k] = (uint8_t)rand_r(&seed);
		sendto(junk, q, len, 0, (struct sockaddr *)&server, sizeof(server));
		usleep(1000);
	}
	size_t len = query(q, 1, 1, "gitlab.corp.internal", -1);
	for (size_t cut = 0; cut < 12; cut++) /* cut headers: dropped */
		sendto(junk, q, cut, 0, (struct sockaddr *)&server, sizeof(server));

	for (uint16_t qd = 0; qd <= 5; qd += 5) { /* qdcount 0 and 5: FORMERR */
		len = query(q, (uint16_t)(0x4200 + qd), qd, "gitlab.corp.internal", -1);
		if (qd) { /* five questions, the same one */
			size_t one = len - 12;
			for (size_t k = 1; k < 5; k++)
				memcpy(q + 12 + k * one, q + 12, one);
			len = 12 + 5 * one;
		}
		ssize_t n = ask(fd, q, len, r, sizeof(r));
		if (n < 12 || (r[3] & 0x0f) != 1)
			return fail(qd ? "qdcount 5: no FORMERR" : "qdcount 0: no FORMERR");
	}
	len = query(q, 0x4343, 1, "big.corp.internal", 65535);
	ssize_t n = ask(fd, q, len, r, sizeof(r));
	if (n < 12 || n > 1232 || !(r[2] & 0x02))
		return fail("huge EDNS size: not a truncated answer within 1232 bytes");
	len = query(q, 0x4444, 1, "gitlab.corp.internal", -1);
	n = ask(fd, q, len, r, sizeof(r));
	if (n < 12 || (r[3] & 0x0f) || r[7] != 1)
		return fail("the server stopped answering");
	printf("malformed packets: FORMERR for qdcount 0 and 5, TC within 1232 bytes for a huge "
	       "EDNS size, still answering\n");
	close(fd);
	close(junk);
	return 0;
}
