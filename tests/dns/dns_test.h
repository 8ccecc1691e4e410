/* Helpers of the dns plugin's tests: queries built and read with ldns, sent
 * over real UDP and TCP sockets on loopback, and a mock core with stub
 * owners of the `devices` and `wg` databases. */
#ifndef DNS_TEST_H
#define DNS_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "dns.h"
#include "mg_mock.h"

extern const struct mg_plugin mg_plugin_descriptor; /* dns's, linked in */

/* The wire form of a query; `edns` < 0: no OPT, else its payload size. */
static inline size_t t_wire(const char *name, ldns_rr_type type, int edns, uint16_t id,
                            uint8_t *out, size_t cap)
{
	ldns_pkt *q = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;
	assert_int_equal(ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
	                 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, id);
	if (edns >= 0)
		ldns_pkt_set_edns_udp_size(q, (uint16_t)edns);
	assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	assert_true(len <= cap);
	memcpy(out, wire, len);
	free(wire);
	ldns_pkt_free(q);
	return len;
}

/* Pumps the mock's fds while waiting (the plugin thread's loop in tests). */
static inline void t_pump(struct mg_mock *m)
{
	json_t *regs = m ? mg_mock_registrations(m, "dns") : NULL;
	json_t *fd;
	size_t i;
	json_array_foreach(json_object_get(regs, "fds"), i, fd)
	{
		mg_mock_fire_fd(m, (int)json_integer_value(fd), MG_FD_READ);
	}
	json_decref(regs);
}

/* Sends raw bytes over UDP to 127.0.0.1:port and waits up to ms for the
 * reply (pumping m when not NULL). Returns its length, 0 on no reply. */
static inline size_t t_udp_raw(struct mg_mock *m, uint16_t port, const uint8_t *data, size_t len,
                               uint8_t *reply, size_t cap, int ms)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(sendto(fd, data, len, 0, (struct sockaddr *)&to, sizeof(to)),
	                 (ssize_t)len);
	ssize_t n = 0;
	for (int waited = 0; waited < ms; waited += 5) {
		struct pollfd p = {fd, POLLIN, 0};
		if (m)
			t_pump(m);
		if (poll(&p, 1, 5) == 1) {
			n = recv(fd, reply, cap, 0);
			break;
		}
	}
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

static inline ldns_pkt *t_parse(const uint8_t *data, size_t len)
{
	ldns_pkt *p = NULL;
	if (!len || ldns_wire2pkt(&p, data, len) != LDNS_STATUS_OK)
		return NULL;
	return p;
}

/* A query over UDP; the reply parsed (NULL: none within 2 s). */
static inline ldns_pkt *t_udp(struct mg_mock *m, uint16_t port, const char *name, ldns_rr_type type,
                              int edns)
{
	uint8_t q[512], r[65536];
	size_t len = t_wire(name, type, edns, 0x4242, q, sizeof(q));
	size_t n = t_udp_raw(m, port, q, len, r, sizeof(r), 2000);
	return t_parse(r, n);
}

/* A query over TCP (pumping m): the reply parsed. */
static inline ldns_pkt *t_tcp(struct mg_mock *m, uint16_t port, const char *name, ldns_rr_type type)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
	uint8_t q[514], r[65537];
	size_t len = t_wire(name, type, -1, 0x4343, q + 2, sizeof(q) - 2), got = 0;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	q[0] = (uint8_t)(len >> 8);
	q[1] = (uint8_t)len;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	connect(fd, (struct sockaddr *)&to, sizeof(to));
	int sent = 0;
	for (int waited = 0; waited < 3000; waited += 5) {
		struct pollfd p = {fd, (short)(sent ? POLLIN : POLLOUT), 0};
		if (m)
			t_pump(m);
		if (poll(&p, 1, 5) != 1)
			continue;
		if (!sent) {
			assert_int_equal(write(fd, q, len + 2), (ssize_t)(len + 2));
			sent = 1;
			continue;
		}
		ssize_t n = read(fd, r + got, sizeof(r) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= 2 && got == 2 + ((size_t)r[0] << 8 | r[1]))
			break;
	}
	close(fd);
	return got > 2 ? t_parse(r + 2, got - 2) : NULL;
}

/* The answer section as text: "A 10.0.0.2,A 10.0.0.3" (sorted as sent). */
static inline char *t_answers(ldns_pkt *p, char *buf, size_t len)
{
	ldns_rr_list *an = ldns_pkt_answer(p);
	buf[0] = '\0';
	for (size_t i = 0; an && i < ldns_rr_list_rr_count(an); i++) {
		ldns_rr *rr = ldns_rr_list_rr(an, i);
		char *type = ldns_rr_type2str(ldns_rr_get_type(rr));
		char *data = ldns_rdf2str(ldns_rr_rdf(rr, 0));
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s %s", i ? "," : "", type, data);
		free(type);
		free(data);
	}
	return buf;
}

/* The first port the plugin listens on (dns.stats "listen"). */
static inline uint16_t t_port(struct mg_mock *m)
{
	json_t *reply;
	if (mg_mock_request(m, "dns.stats", NULL, &reply))
		fail_msg("dns.stats: %s", json_string_value(json_object_get(reply, "message")));
	const char *l = json_string_value(json_array_get(json_object_get(reply, "listen"), 0));
	assert_non_null(l);
	uint16_t port = (uint16_t)atoi(strrchr(l, ':') + 1);
	json_decref(reply);
	return port;
}

static inline json_int_t t_stat(struct mg_mock *m, const char *name)
{
	json_t *reply;
	assert_int_equal(mg_mock_request(m, "dns.stats", NULL, &reply), 0);
	json_int_t v = json_integer_value(json_object_get(reply, name));
	json_decref(reply);
	return v;
}

/* A started mock: stubs for wireguard (wg) and preauth (devices), and dns
 * with `config` (taken; merged over the defaults). Without a listen
 * setting: where wg/server says (port 53) when `follow_vpn`, else a free
 * loopback port. */
static inline struct mg_mock *t_mock_listen(const char *dir, json_t *config, int follow_vpn)
{
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL};
	static const char *const pa_owns[] = {"users", "codes", "devices", "ipam", NULL};
	struct mg_mock *m = mg_mock_new(dir, err, sizeof(err));
	if (!m)
		fail_msg("%s", err);
	if (!getenv("MG_MOCK_LOG"))
		mg_mock_log_level(m, MG_LOG_WARN);
	json_t *cfg = config ? json_deep_copy(config) : json_object();
	json_decref(config);
	if (!json_object_get(cfg, "listen") && !follow_vpn)
		json_object_set_new(cfg, "listen", json_pack("[s]", "127.0.0.1:0"));
	assert_int_equal(mg_mock_add_stub(m, "wireguard", wg_owns), 0);
	assert_int_equal(mg_mock_add_stub(m, "preauth", pa_owns), 0);
	if (mg_mock_add(m, &mg_plugin_descriptor, cfg, err, sizeof(err)))
		fail_msg("%s", err);
	json_decref(cfg);
	if (mg_mock_start(m, err, sizeof(err)))
		fail_msg("%s", err);
	return m;
}

static inline struct mg_mock *t_mock(const char *dir, json_t *config)
{
	return t_mock_listen(dir, config, 0);
}

/* Writes a device as preauth would and announces it; the index follows
 * after the loop turn (the rebuild timer), which advance(0) runs. */
static inline void t_device(struct mg_mock *m, const char *id, const char *user, const char *name,
                            const char *address, const char *state, json_int_t created)
{
	json_t *dev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", id, "user", user,
	                        "name", name, "role", "developer", "address", address, "state",
	                        state, "created_at", created);
	assert_int_equal(mg_mock_state_put(m, "preauth", "devices", id, dev), 0);
	assert_int_equal(mg_mock_publish(m, "device.changed", dev), 0);
	json_decref(dev);
	mg_mock_advance(m, 0);
}

static inline void t_vpn(struct mg_mock *m, const char *address)
{
	json_t *server = json_pack("{s:s, s:s}", "address", address, "public_key",
	                           "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=");
	assert_int_equal(mg_mock_state_put(m, "wireguard", "wg", "server", server), 0);
	json_decref(server);
	mg_mock_advance(m, 0);
}

/* A request built with json_pack's format; returns the reply (owned). */
static inline json_t *t_call(struct mg_mock *m, const char *service, int *rc, const char *fmt, ...)
{
	va_list ap;
	json_error_t jerr;
	json_t *reply;
	va_start(ap, fmt);
	json_t *request = json_vpack_ex(&jerr, 0, fmt, ap);
	va_end(ap);
	if (!request)
		fail_msg("bad pack format: %s", jerr.text);
	int r = mg_mock_request(m, service, request, &reply);
	json_decref(request);
	if (rc)
		*rc = r;
	return reply;
}

static inline const char *t_err(json_t *reply)
{
	const char *code = mg_reply_error(reply);
	return code ? code : "";
}

#endif
