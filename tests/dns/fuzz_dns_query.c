/* libFuzzer: a datagram as a client sends it, answered both ways — by the
 * hand-written decoder and encoder and by ldns — which must agree, and
 * agree with the oracle that knows the index from its table (dns_diff.h),
 * over UDP and TCP limits. Every response stays within its
 * limit and parses; nothing may crash, leak or be undefined. The parsers
 * of forwarding (the question of a query, SERVFAIL, truncation) get the
 * same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dns_diff.h"

static struct dns_index *idx;

static void teardown(void)
{
	dns_index_free(idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[DNS_TCP_MAX];
	char why[200];
	if (!idx) {
		idx = dns_diff_index();
		atexit(teardown);
	}
	for (int forward = 0; forward <= 1; forward++) {
		struct dns_view v = {idx, forward, 0};
		for (int tcp = 0; tcp <= 1; tcp++) {
			if (dns_diff(&v, data, size, tcp, why, sizeof(why))) {
				fprintf(stderr, "the two paths disagree or are wrong: %s\n", why);
				abort();
			}
			size_t n = 0;
			if (dns_serve_ldns(&v, data, size, tcp, out, sizeof(out), &n) ==
			    DNS_REPLY) {
				ldns_pkt *p = NULL;
				if (n < DNS_HEADER || n > (tcp ? DNS_TCP_MAX : DNS_UDP_PAYLOAD) ||
				    (n > DNS_HEADER && ldns_wire2pkt(&p, out, n) != LDNS_STATUS_OK))
					abort();
				ldns_pkt_free(p);
			}
		}
	}
	struct dns_question q;
	if (!dns_query_question(data, size, &q))
		(void)dns_reply_check(data, size, 0, &q);
	(void)dns_error_reply(data, size, DNS_R_SERVFAIL, 1, out, DNS_UDP_PAYLOAD);
	if (dns_truncate_reply(data, size, out, DNS_UDP_PAYLOAD) > DNS_UDP_PAYLOAD)
		abort();
	return 0;
}
