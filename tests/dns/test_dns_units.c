/* The dns plugin's parts without a core: names and labels, addresses, the
 * index, the hand-written decoder and encoder against ldns, truncation,
 * EDNS, and malformed packets. */
#include "dns_test.h"

#include "dns_diff.h"

static void test_device_label(void **unused)
{
	(void)unused;
	static const char *const cases[][3] = {
	    {"alice-laptop", "alice", "alice-laptop"},
	    {"Alice's MacBook.local", "alice", "alice-s-macbook-local"},
	    {"", "bob", "bob"},
	    {NULL, "bob", "bob"},
	    {"---", "", "device"},
	    {"\xc3\x84rger-PC", "x", "rger-pc"},
	    {"a__b  c", "x", "a-b-c"},
	    {"-x-", "x", "x"},
	};
	char out[DNS_LABEL_MAX + 1];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dns_device_label(cases[i][0], cases[i][1], out);
		assert_string_equal(out, cases[i][2]);
	}
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	dns_device_label(longname, "x", out);
	assert_int_equal(strlen(out), DNS_LABEL_MAX);
	/* every label is a valid host name */
	uint8_t wire[DNS_NAME_MAX];
	size_t len;
	assert_int_equal(dns_name_from_text(out, wire, &len), 0);
	dns_device_fallback(out, "3f9c0a7be21d4c55", out);
	assert_int_equal(strlen(out), DNS_LABEL_MAX);
	assert_non_null(strstr(out, "-3f9c0a7be21d4c55"));
	assert_int_equal(dns_name_from_text(out, wire, &len), 0);
	dns_device_fallback("alice", "3F9C", out);
	assert_string_equal(out, "alice-3f9c");
}

static void test_names(void **unused)
{
	(void)unused;
	uint8_t wire[DNS_NAME_MAX];
	size_t len;
	char text[DNS_TEXT_MAX];
	assert_int_equal(dns_name_from_text("Corp.Internal.", wire, &len), 0);
	assert_int_equal(len, 15);
	assert_memory_equal(wire,
	                    "\x04"
	                    "corp"
	                    "\x08"
	                    "internal"
	                    "\x00",
	                    15);
	dns_name_to_text(wire, len, text, sizeof(text));
	assert_string_equal(text, "corp.internal");
	static const char *const bad[] = {"", ".", "a..b", "-a", "a-", "a b", "a/b", "\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dns_name_from_text(bad[i], wire, &len), -EINVAL);
	char lab[70];
	memset(lab, 'x', 64);
	lab[64] = '\0';
	assert_int_equal(dns_name_from_text(lab, wire, &len), -EINVAL);
	lab[63] = '\0';
	assert_int_equal(dns_name_from_text(lab, wire, &len), 0);
	const uint8_t odd[] = {3, 'a', '.', 0x01, 0};
	dns_name_to_text(odd, sizeof(odd), text, sizeof(text));
	assert_string_equal(text, "a\\046\\001");
	uint8_t rev[DNS_NAME_MAX];
	const uint8_t v4[4] = {10, 0, 0, 2};
	assert_int_equal(dns_reverse_name(AF_INET, v4, rev, &len), 0);
	dns_name_to_text(rev, len, text, sizeof(text));
	assert_string_equal(text, "2.0.0.10.in-addr.arpa");
	uint8_t v6[16] = {0xfd, 0x00, [15] = 0x2b};
	assert_int_equal(dns_reverse_name(AF_INET6, v6, rev, &len), 0);
	dns_name_to_text(rev, len, text, sizeof(text));
	assert_string_equal(
	    text, "b.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa");
}

static void test_addresses(void **unused)
{
	(void)unused;
	struct sockaddr_storage ss;
	socklen_t len;
	char text[96];
	assert_int_equal(dns_sockaddr_parse("10.0.0.1", 53, &ss, &len), 0);
	dns_sockaddr_text((struct sockaddr *)&ss, text, sizeof(text));
	assert_string_equal(text, "10.0.0.1:53");
	assert_int_equal(dns_sockaddr_parse("10.0.0.1:5353", 53, &ss, &len), 0);
	dns_sockaddr_text((struct sockaddr *)&ss, text, sizeof(text));
	assert_string_equal(text, "10.0.0.1:5353");
	assert_int_equal(dns_sockaddr_parse("[fd00::1]:5353", 53, &ss, &len), 0);
	dns_sockaddr_text((struct sockaddr *)&ss, text, sizeof(text));
	assert_string_equal(text, "[fd00::1]:5353");
	assert_int_equal(dns_sockaddr_parse("fd00::1", 53, &ss, &len), 0);
	static const char *const bad[] = {"",         "10.0.0",  "10.0.0.1:",  "10.0.0.1:70000",
	                                  "[fd00::1", "host:53", "10.0.0.1:5x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dns_sockaddr_parse(bad[i], 53, &ss, &len), -EINVAL);

	struct dns_prefix p;
	assert_int_equal(dns_prefix_parse("10.0.0.77/24", &p), 0);
	assert_int_equal(p.len, 24);
	struct sockaddr_in in = {.sin_family = AF_INET};
	inet_pton(AF_INET, "10.0.0.200", &in.sin_addr);
	assert_true(dns_prefix_has(&p, (struct sockaddr *)&in));
	inet_pton(AF_INET, "10.0.1.1", &in.sin_addr);
	assert_false(dns_prefix_has(&p, (struct sockaddr *)&in));
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:10.0.0.9", &in6.sin6_addr);
	assert_true(dns_prefix_has(&p, (struct sockaddr *)&in6));
	assert_int_equal(dns_prefix_parse("10.0.0.0/33", &p), -EINVAL);
	assert_int_equal(dns_prefix_parse("fd00::/129", &p), -EINVAL);

	/* the ACL: loopback and the VPN, nobody else */
	struct dns_acl acl = {.n = 2};
	dns_prefix_parse("127.0.0.0/8", &acl.prefix[0]);
	dns_prefix_parse("10.0.0.0/24", &acl.prefix[1]);
	inet_pton(AF_INET, "127.0.0.5", &in.sin_addr);
	assert_true(dns_acl_allows(&acl, (struct sockaddr *)&in));
	inet_pton(AF_INET, "198.18.0.2", &in.sin_addr);
	assert_false(dns_acl_allows(&acl, (struct sockaddr *)&in));
}

static void test_index(void **unused)
{
	(void)unused;
	struct dns_index *idx = dns_diff_index();
	uint8_t name[DNS_NAME_MAX];
	size_t len;
	dns_name_from_text("db.prod.corp.internal", name, &len);
	const struct dns_node *n = dns_index_find(idx, name, len, dns_hash(name, len));
	assert_non_null(n);
	assert_int_equal(dns_node_block(n, DNS_B_A).count, 1);
	assert_string_equal((const char *)dns_node_zone(idx, n)->name, "\x04"
	                                                               "corp"
	                                                               "\x08"
	                                                               "internal");
	/* the empty non-terminal exists, without records */
	dns_name_from_text("prod.corp.internal", name, &len);
	n = dns_index_find(idx, name, len, dns_hash(name, len));
	assert_non_null(n);
	for (int b = 0; b < DNS_B_COUNT; b++)
		assert_int_equal(dns_node_block(n, b).count, 0);
	/* unknown names inside a zone find the zone; outside, nothing */
	dns_name_from_text("x.y.corp.internal", name, &len);
	assert_null(dns_index_find(idx, name, len, dns_hash(name, len)));
	assert_non_null(dns_index_zone_of(idx, name, len));
	dns_name_from_text("99.0.0.10.in-addr.arpa", name, &len);
	assert_non_null(dns_index_zone_of(idx, name, len));
	dns_name_from_text("example.com", name, &len);
	assert_null(dns_index_zone_of(idx, name, len));
	/* frozen: no more changes */
	uint8_t a4[4] = {10, 0, 1, 2};
	assert_int_equal(dns_index_add(idx, name, len, DNS_T_A, a4, 4), -EBUSY);
	dns_index_free(idx);

	/* duplicates are one RR; past DNS_RR_PER_NAME: E2BIG */
	idx = dns_index_new(30, 1);
	dns_name_from_text("gitlab.corp.internal", name, &len);
	assert_int_equal(dns_index_add(idx, name, len, DNS_T_A, a4, 4), 0);
	assert_int_equal(dns_index_add(idx, name, len, DNS_T_A, a4, 4), 0);
	int rc = 0;
	for (int i = 0; i < DNS_RR_PER_NAME + 5 && !rc; i++) {
		a4[3] = (uint8_t)i;
		a4[2] = (uint8_t)(i >> 8) + 100;
		rc = dns_index_add(idx, name, len, DNS_T_A, a4, 4);
	}
	assert_int_equal(rc, -E2BIG);
	assert_int_equal(dns_index_freeze(idx), 0);
	n = dns_index_find(idx, name, len, dns_hash(name, len));
	assert_non_null(n);
	assert_int_equal(dns_node_block(n, DNS_B_A).count, DNS_RR_PER_NAME);
	assert_null(dns_node_zone(idx, n)); /* no zone was declared */
	dns_index_free(idx);
}

static struct dns_view view_of(struct dns_index *idx, int fast)
{
	struct dns_view v = {idx, 1, fast};
	return v;
}

/* Builds a query by hand: flags, counts, the question (the name's case
 * kept), optional OPT. */
static size_t raw_query(uint8_t *out, uint16_t qd, const char *qname, uint16_t qtype, int opt_size,
                        uint8_t opt_version)
{
	uint8_t name[DNS_NAME_MAX];
	size_t len = 0, n;
	for (const char *p = qname; *p;) {
		size_t l = strcspn(p, ".");
		name[len++] = (uint8_t)l;
		memcpy(name + len, p, l);
		len += l;
		p += l + (p[l] == '.');
	}
	name[len++] = 0;
	uint8_t hdr[12] = {0xab, 0xcd, 0x01, 0x00, (uint8_t)(qd >> 8),   (uint8_t)qd, 0,
	                   0,    0,    0,    0,    opt_size >= 0 ? 1 : 0};
	memcpy(out, hdr, 12);
	memcpy(out + 12, name, len);
	n = 12 + len;
	out[n++] = (uint8_t)(qtype >> 8);
	out[n++] = (uint8_t)qtype;
	out[n++] = 0;
	out[n++] = 1;
	if (opt_size >= 0) {
		uint8_t opt[11] = {
		    0, 0, 41, (uint8_t)(opt_size >> 8), (uint8_t)opt_size, 0, opt_version, 0x80,
		    0, 0, 0};
		memcpy(out + n, opt, 11);
		n += 11;
	}
	return n;
}

static void test_paths_agree(void **unused)
{
	(void)unused;
	struct dns_index *idx = dns_diff_index();
	struct dns_view v = view_of(idx, 0);
	static const char *const names[] = {
	    "alice-laptop.corp.internal", "ALICE-LAPTOP.Corp.Internal",
	    "gitlab.corp.internal",       "prod.corp.internal",
	    "db.prod.corp.internal",      "nobody.corp.internal",
	    "a.b.c.corp.internal",        "corp.internal",
	    "2.0.0.10.in-addr.arpa",      "99.0.0.10.in-addr.arpa",
	    "0.0.10.in-addr.arpa",        "example.com",
	    "big.corp.internal"};
	static const uint16_t types[] = {DNS_T_A,  DNS_T_AAAA, DNS_T_PTR, DNS_T_SOA,
	                                 DNS_T_NS, DNS_T_ANY,  16,        DNS_T_AXFR};
	static const int sizes[] = {-1, 0, 512, 1232, 4096, 65535};
	char why[200];
	int answered = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
			for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
				for (int tcp = 0; tcp <= 1; tcp++) {
					uint8_t q[600];
					size_t len =
					    raw_query(q, 1, names[i], types[t], sizes[s], 0);
					struct dns_query parsed;
					assert_int_equal(dns_query_parse(q, len, &parsed), 0);
					if (dns_diff(&v, q, len, tcp, why, sizeof(why)))
						fail_msg("%s type %u edns %d tcp %d: %s", names[i],
						         types[t], sizes[s], tcp, why);
					answered++;
				}
	assert_true(answered > 500);
	dns_index_free(idx);
}

static enum dns_verdict serve(struct dns_view *v, const uint8_t *q, size_t len, int tcp,
                              uint8_t *out, size_t *outlen)
{
	static uint8_t buf[DNS_TCP_MAX];
	*outlen = 0;
	enum dns_verdict r = dns_serve(v, q, len, tcp, buf, sizeof(buf), outlen);
	memcpy(out, buf, *outlen);
	return r;
}

static void test_edns_and_truncation(void **unused)
{
	(void)unused;
	struct dns_index *idx = dns_diff_index();
	uint8_t q[600], r[DNS_TCP_MAX];
	size_t len, n;
	for (int fast = 0; fast <= 1; fast++) {
		struct dns_view v = view_of(idx, fast);
		/* 120 A records: 512 without EDNS, TC */
		len = raw_query(q, 1, "big.corp.internal", DNS_T_A, -1, 0);
		assert_int_equal(serve(&v, q, len, 0, r, &n), DNS_REPLY);
		assert_true(n <= 512);
		assert_true(r[2] & 0x02);
		assert_int_equal(r[7], 0); /* no answers */
		/* a huge EDNS size gets our 1232 at most: still TC */
		len = raw_query(q, 1, "big.corp.internal", DNS_T_A, 65535, 0);
		assert_int_equal(serve(&v, q, len, 0, r, &n), DNS_REPLY);
		assert_true(n <= DNS_UDP_PAYLOAD);
		assert_true(r[2] & 0x02);
		ldns_pkt *p = t_parse(r, n);
		assert_non_null(p);
		assert_int_equal(ldns_pkt_edns_udp_size(p), DNS_UDP_PAYLOAD);
		assert_true(ldns_pkt_edns_do(p));
		ldns_pkt_free(p);
		/* TCP: everything */
		assert_int_equal(serve(&v, q, len, 1, r, &n), DNS_REPLY);
		assert_false(r[2] & 0x02);
		assert_int_equal(r[6] << 8 | r[7], 120);
		/* EDNS version 1: BADVERS (extended rcode 1 in the OPT) */
		len = raw_query(q, 1, "gitlab.corp.internal", DNS_T_A, 1232, 1);
		assert_int_equal(serve(&v, q, len, 0, r, &n), DNS_REPLY);
		p = t_parse(r, n);
		assert_non_null(p);
		assert_int_equal(ldns_pkt_edns_extended_rcode(p), 1);
		assert_int_equal(ldns_pkt_ancount(p), 0);
		ldns_pkt_free(p);
		/* an outside name is forwarded, not answered */
		len = raw_query(q, 1, "example.com", DNS_T_A, -1, 0);
		assert_int_equal(serve(&v, q, len, 0, r, &n), DNS_FORWARD);
	}
	dns_index_free(idx);
}

static void test_malformed(void **unused)
{
	(void)unused;
	struct dns_index *idx = dns_diff_index();
	uint8_t q[700], r[DNS_TCP_MAX];
	size_t len, n;
	for (int fast = 0; fast <= 1; fast++) {
		struct dns_view v = view_of(idx, fast);
		/* shorter than a header, or a response: dropped */
		len = raw_query(q, 1, "gitlab.corp.internal", DNS_T_A, -1, 0);
		for (size_t cut = 0; cut < 12; cut++)
			assert_int_equal(serve(&v, q, cut, 0, r, &n), DNS_DROP);
		q[2] |= 0x80;
		assert_int_equal(serve(&v, q, len, 0, r, &n), DNS_DROP);
		q[2] &= 0x7f;
		/* a cut question: FORMERR with the id */
		for (size_t cut = 12; cut < len; cut++) {
			assert_int_equal(serve(&v, q, cut, 0, r, &n), DNS_REPLY);
			assert_int_equal(r[3] & 0x0f, DNS_R_FORMERR);
			assert_int_equal(r[0] << 8 | r[1], 0xabcd);
		}
		/* qdcount 0 and 5: FORMERR */
		len = raw_query(q, 0, "gitlab.corp.internal", DNS_T_A, -1, 0);
		assert_int_equal(serve(&v, q, 12, 0, r, &n), DNS_REPLY);
		assert_int_equal(r[3] & 0x0f, DNS_R_FORMERR);
		len = raw_query(q, 5, "gitlab.corp.internal", DNS_T_A, -1, 0);
		assert_int_equal(serve(&v, q, len, 0, r, &n), DNS_REPLY);
		assert_int_equal(r[3] & 0x0f, DNS_R_FORMERR);
		/* opcode STATUS: NOTIMP */
		len = raw_query(q, 1, "gitlab.corp.internal", DNS_T_A, -1, 0);
		q[2] = (uint8_t)(2 << 3);
		assert_int_equal(serve(&v, q, len, 0, r, &n), DNS_REPLY);
		assert_int_equal(r[3] & 0x0f, DNS_R_NOTIMP);
		/* a compression loop in the question: FORMERR, no hang */
		const uint8_t loop[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
		assert_int_equal(serve(&v, loop, sizeof(loop), 0, r, &n), DNS_REPLY);
		assert_int_equal(r[3] & 0x0f, DNS_R_FORMERR);
		/* a compressed question (legal): ldns reads it, the answer is right */
		const uint8_t ptr[] = {0,   1,   1,    0,   0,   1,   0,   0,   0,   0,
		                       0,   0,   0xc0, 18,  0,   1,   0,   1,   6,   'g',
		                       'i', 't', 'l',  'a', 'b', 4,   'c', 'o', 'r', 'p',
		                       8,   'i', 'n',  't', 'e', 'r', 'n', 'a', 'l', 0};
		assert_int_equal(serve(&v, ptr, sizeof(ptr), 0, r, &n), DNS_REPLY);
		assert_int_equal(r[3] & 0x0f, DNS_R_NOERROR);
		assert_int_equal(r[7], 1);
		/* two OPT records: FORMERR */
		len = raw_query(q, 1, "gitlab.corp.internal", DNS_T_A, 1232, 0);
		memcpy(q + len, q + len - 11, 11);
		q[11] = 2;
		assert_int_equal(serve(&v, q, len + 11, 0, r, &n), DNS_REPLY);
		assert_int_equal(r[3] & 0x0f, DNS_R_FORMERR);
		/* random bytes: never a crash, never an answer over the limit */
		unsigned seed = 7;
		for (int i = 0; i < 20000; i++) {
			size_t l = (size_t)(rand_r(&seed) % 300);
			for (size_t k = 0; k < l; k++)
				q[k] = (uint8_t)rand_r(&seed);
			if (i % 3 == 0 && l > 12) { /* a plausible header */
				q[2] = 1;
				q[4] = 0;
				q[5] = 1;
			}
			enum dns_verdict vd = serve(&v, q, l, i & 1, r, &n);
			if (vd == DNS_REPLY)
				assert_true(n >= 12 && n <= ((i & 1) ? DNS_TCP_MAX : 512u + 11));
		}
	}
	dns_index_free(idx);
}

static void test_error_reply(void **unused)
{
	(void)unused;
	uint8_t q[600], r[1500];
	size_t len = raw_query(q, 1, "www.example.com", DNS_T_A, 1232, 0);
	size_t n = dns_error_reply(q, len, DNS_R_SERVFAIL, 1, r, sizeof(r));
	ldns_pkt *p = t_parse(r, n);
	assert_non_null(p);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
	assert_int_equal(ldns_pkt_id(p), 0xabcd);
	assert_int_equal(ldns_pkt_qdcount(p), 1);
	assert_true(ldns_pkt_edns(p));
	ldns_pkt_free(p);
	assert_int_equal(dns_error_reply(q, 5, DNS_R_SERVFAIL, 1, r, sizeof(r)), 0);

	/* an upstream's reply must match id and question */
	struct dns_question qq;
	assert_int_equal(dns_query_question(q, len, &qq), 0);
	assert_int_equal(dns_reply_check(r, n, 0xabcd, &qq), DNS_R_SERVFAIL);
	assert_int_equal(dns_reply_check(r, n, 0xabce, &qq), -EBADMSG);
	qq.type = DNS_T_AAAA;
	assert_int_equal(dns_reply_check(r, n, 0xabcd, &qq), -EBADMSG);
	assert_int_equal(dns_reply_check(q, len, 0xabcd, &qq), -EBADMSG); /* not a reply */

	/* an upstream's answer too big for UDP: header and question, TC */
	ldns_pkt *big = t_parse(q, len);
	assert_non_null(big);
	ldns_pkt_set_qr(big, true);
	for (int i = 0; i < 150; i++) {
		char text[100];
		ldns_rr *rr = NULL;
		snprintf(text, sizeof(text), "www.example.com. 60 IN A 198.18.%d.%d", i / 200,
		         i % 200);
		assert_int_equal(ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL), 0);
		ldns_pkt_push_rr(big, LDNS_SECTION_ANSWER, rr);
	}
	uint8_t *wire;
	size_t wlen;
	assert_int_equal(ldns_pkt2wire(&wire, big, &wlen), 0);
	assert_true(wlen > DNS_UDP_PAYLOAD);
	n = dns_truncate_reply(wire, wlen, r, sizeof(r));
	free(wire);
	ldns_pkt_free(big);
	p = t_parse(r, n);
	assert_non_null(p);
	assert_true(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_int_equal(ldns_pkt_qdcount(p), 1);
	assert_int_equal(ldns_pkt_id(p), 0xabcd);
	ldns_pkt_free(p);
	assert_int_equal(dns_truncate_reply(r, 5, r, sizeof(r)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_device_label), cmocka_unit_test(test_names),
	    cmocka_unit_test(test_addresses),    cmocka_unit_test(test_index),
	    cmocka_unit_test(test_paths_agree),  cmocka_unit_test(test_edns_and_truncation),
	    cmocka_unit_test(test_malformed),    cmocka_unit_test(test_error_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
