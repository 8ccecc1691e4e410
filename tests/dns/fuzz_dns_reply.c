/* libFuzzer: a datagram as an upstream resolver sends it back. The check
 * that it answers our query (id, QR, question) and the cut for a UDP
 * client must take anything; a reply that passes is relayed, so its
 * truncation must parse and fit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[DNS_UDP_PAYLOAD];
	struct dns_question q = {.type = DNS_T_A, .qclass = DNS_C_IN};
	/* the question asked: www.example.test A, or the reply's own if it has one */
	dns_name_from_text("www.example.test", q.name, &q.len);
	dns_query_question(data, size, &q);
	uint16_t id = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;
	int rcode = dns_reply_check(data, size, id, &q);
	if (rcode >= 0 && (rcode > 15 || size < DNS_HEADER || !(data[2] & 0x80)))
		abort();
	size_t n = dns_truncate_reply(data, size, out, sizeof(out));
	if (n) {
		ldns_pkt *p = NULL;
		if (ldns_wire2pkt(&p, out, n) != LDNS_STATUS_OK || !ldns_pkt_tc(p) ||
		    ldns_pkt_ancount(p))
			abort();
		ldns_pkt_free(p);
	}
	return 0;
}
