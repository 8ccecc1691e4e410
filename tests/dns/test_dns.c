/* The dns plugin through the mock core, answering real queries over UDP and
 * TCP on loopback: names from state, collisions, runtime records, NXDOMAIN
 * with the SOA, PTR, forwarding with failover, reloads, bad settings. */
#include "dns_test.h"

#define A  LDNS_RR_TYPE_A
#define TS 1732356000

static int strcmp_p(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void expect_answer(struct mg_mock *m, const char *name, ldns_rr_type type,
                          const char *answers)
{
	char buf[4096];
	ldns_pkt *p = t_udp(m, t_port(m), name, type, -1);
	if (!p)
		fail_msg("no reply for %s", name);
	if (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR ||
	    strcmp(t_answers(p, buf, sizeof(buf)), answers))
		fail_msg("%s: rcode %d, answers '%s', expected '%s'", name, ldns_pkt_get_rcode(p),
		         buf, answers);
	assert_true(ldns_pkt_aa(p));
	ldns_pkt_free(p);
}

static void expect_rcode(struct mg_mock *m, const char *name, ldns_rr_type type, int rcode)
{
	ldns_pkt *p = t_udp(m, t_port(m), name, type, -1);
	if (!p)
		fail_msg("no reply for %s", name);
	if ((int)ldns_pkt_get_rcode(p) != rcode)
		fail_msg("%s: rcode %d, expected %d", name, ldns_pkt_get_rcode(p), rcode);
	ldns_pkt_free(p);
}

static void test_device_names(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL);
	t_vpn(m, "10.0.0.1/24");
	t_device(m, "3f9c0a7be21d4c55", "alice", "alice-laptop", "10.0.0.2/32", "active", TS);
	t_device(m, "aaaaaaaaaaaaaaaa", "bob", "Bob's MacBook", "10.0.0.3/32", "active", TS);
	t_device(m, "bbbbbbbbbbbbbbbb", "carol", "carol", "10.0.0.4/32", "pending", TS);

	expect_answer(m, "alice-laptop.corp.internal", A, "A 10.0.0.2");
	expect_answer(m, "ALICE-Laptop.Corp.Internal.", A, "A 10.0.0.2");
	expect_answer(m, "bob-s-macbook.corp.internal", A, "A 10.0.0.3");
	expect_rcode(m, "carol.corp.internal", A, LDNS_RCODE_NXDOMAIN); /* pending */
	expect_answer(m, "2.0.0.10.in-addr.arpa", LDNS_RR_TYPE_PTR,
	              "PTR alice-laptop.corp.internal.");
	/* an address of the VPN with no device: ours to deny */
	expect_rcode(m, "99.0.0.10.in-addr.arpa", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN);

	/* NODATA: the name exists, not with this type; SOA in the authority */
	ldns_pkt *p = t_udp(m, t_port(m), "alice-laptop.corp.internal", LDNS_RR_TYPE_AAAA, -1);
	assert_non_null(p);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_int_equal(ldns_pkt_nscount(p), 1);
	ldns_pkt_free(p);

	/* registered, disabled, enabled, renamed, deleted: the name follows at once */
	t_device(m, "bbbbbbbbbbbbbbbb", "carol", "carol", "10.0.0.4/32", "active", TS);
	expect_answer(m, "carol.corp.internal", A, "A 10.0.0.4");
	t_device(m, "3f9c0a7be21d4c55", "alice", "alice-laptop", "10.0.0.2/32", "disabled", TS);
	expect_rcode(m, "alice-laptop.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	expect_rcode(m, "2.0.0.10.in-addr.arpa", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN);
	t_device(m, "3f9c0a7be21d4c55", "alice", "alice-laptop", "10.0.0.2/32", "active", TS);
	expect_answer(m, "alice-laptop.corp.internal", A, "A 10.0.0.2");
	t_device(m, "3f9c0a7be21d4c55", "alice", "alice-desktop", "10.0.0.2/32", "active", TS);
	expect_rcode(m, "alice-laptop.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	expect_answer(m, "alice-desktop.corp.internal", A, "A 10.0.0.2");
	/* deleted: the record is gone */
	mg_ctx *pa = mg_mock_ctx(m, "preauth");
	mg_txn *txn;
	assert_int_equal(mg_txn_begin(pa, 0, &txn), 0);
	assert_int_equal(mg_state_del(pa, txn, "devices", "bbbbbbbbbbbbbbbb"), 0);
	assert_int_equal(mg_txn_commit(pa, txn), 0);
	json_t *gone = json_pack("{s:s, s:s}", "id", "bbbbbbbbbbbbbbbb", "state", "deleted");
	mg_mock_publish(m, "device.changed", gone);
	json_decref(gone);
	mg_mock_advance(m, 0);
	expect_rcode(m, "carol.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	mg_mock_free(m);
}

static void test_collisions(void **unused)
{
	(void)unused;
	char dir[] = "/tmp/dns-test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	json_t *cfg =
	    json_pack("{s:[{s:s, s:s}]}", "records", "name", "gitlab", "address", "172.19.0.10");
	struct mg_mock *m = t_mock(dir, json_incref(cfg));
	/* the newer "alice" loses to the older; a device named like a service loses */
	t_device(m, "2222222222222222", "alice", "alice", "10.0.0.3/32", "active", TS + 10);
	t_device(m, "1111111111111111", "alice", "alice", "10.0.0.2/32", "active", TS);
	t_device(m, "3333333333333333", "mallory", "gitlab", "10.0.0.4/32", "active", TS);
	expect_answer(m, "alice.corp.internal", A, "A 10.0.0.2");
	expect_answer(m, "alice-2222222222222222.corp.internal", A, "A 10.0.0.3");
	expect_answer(m, "gitlab.corp.internal", A, "A 172.19.0.10");
	expect_answer(m, "gitlab-3333333333333333.corp.internal", A, "A 10.0.0.4");
	/* PTR of the losers: their own names */
	expect_answer(m, "3.0.0.10.in-addr.arpa", LDNS_RR_TYPE_PTR,
	              "PTR alice-2222222222222222.corp.internal.");
	json_t *list = t_call(m, "dns.list", NULL, "{s:s}", "source", "device");
	assert_int_equal(json_array_size(json_object_get(list, "records")), 3);
	json_decref(list);
	mg_mock_free(m);

	/* restarted from the same state: the same names, whatever the order */
	m = t_mock(dir, json_incref(cfg));
	expect_answer(m, "alice.corp.internal", A, "A 10.0.0.2");
	expect_answer(m, "alice-2222222222222222.corp.internal", A, "A 10.0.0.3");
	/* the winner goes: the other takes the name */
	t_device(m, "1111111111111111", "alice", "alice", "10.0.0.2/32", "disabled", TS);
	expect_answer(m, "alice.corp.internal", A, "A 10.0.0.3");
	mg_mock_free(m);
	json_decref(cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_runtime_records(void **unused)
{
	(void)unused;
	char dir[] = "/tmp/dns-test.XXXXXX";
	int rc;
	assert_non_null(mkdtemp(dir));
	json_t *cfg =
	    json_pack("{s:[{s:s, s:s}]}", "records", "name", "gitlab", "address", "172.19.0.10");
	struct mg_mock *m = t_mock(dir, json_incref(cfg));
	expect_rcode(m, "wiki.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	json_t *r =
	    t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "wiki", "address", "172.19.0.20");
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(r, "fqdn")), "wiki.corp.internal");
	json_decref(r);
	expect_answer(m, "wiki.corp.internal", A, "A 172.19.0.20");
	/* a second address, an IPv6 one, a fully qualified name, a repeat */
	json_decref(t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "wiki.corp.internal.",
	                   "address", "172.19.0.21"));
	assert_int_equal(rc, 0);
	json_decref(t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "WIKI", "address", "fd00::20"));
	assert_int_equal(rc, 0);
	json_decref(
	    t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "wiki", "address", "172.19.0.20"));
	assert_int_equal(rc, 0);
	expect_answer(m, "wiki.corp.internal", A, "A 172.19.0.20,A 172.19.0.21");
	expect_answer(m, "wiki.corp.internal", LDNS_RR_TYPE_AAAA, "AAAA fd00::20");
	expect_answer(m, "20.0.19.172.in-addr.arpa", LDNS_RR_TYPE_PTR, "PTR wiki.corp.internal.");
	/* a dotted name makes its parent an empty non-terminal: NODATA, not NXDOMAIN */
	json_decref(
	    t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "db.prod", "address", "172.19.0.30"));
	assert_int_equal(rc, 0);
	expect_answer(m, "db.prod.corp.internal", A, "A 172.19.0.30");
	expect_rcode(m, "prod.corp.internal", A, LDNS_RCODE_NOERROR);

	/* bad input: refused, nothing written */
	long before = mg_mock_state_count(m, "dns", "record/");
	static const char *const bad[][2] = {
	    {"-wiki", "1.2.3.4"}, {"wi ki", "1.2.3.4"},   {"", "1.2.3.4"},
	    {"wiki", "1.2.3"},    {"wiki", "10.0.0.0/8"}, {"a.example.com..", "1.2.3.4"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", bad[i][0], "address",
		           bad[i][1]);
		if (strcmp(t_err(r), "bad_request"))
			fail_msg("dns.add %s %s was accepted", bad[i][0], bad[i][1]);
		json_decref(r);
	}
	r = t_call(m, "dns.add", &rc, "{s:s, s:s, s:s}", "name", "x", "address", "1.2.3.4", "ttl",
	           "5");
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	assert_int_equal(mg_mock_state_count(m, "dns", "record/"), before);

	/* the config's records are not for dns del */
	r = t_call(m, "dns.del", &rc, "{s:s}", "name", "gitlab");
	assert_string_equal(t_err(r), "conflict");
	json_decref(r);
	r = t_call(m, "dns.del", &rc, "{s:s}", "name", "nothing");
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);

	/* list: config, runtime (devices in their own test) */
	r = t_call(m, "dns.list", &rc, "{}");
	assert_int_equal(rc, 0);
	assert_int_equal(json_array_size(json_object_get(r, "records")), 5);
	json_decref(r);
	mg_mock_free(m);

	/* restart: the runtime records come back from db `dns` */
	m = t_mock(dir, json_incref(cfg));
	expect_answer(m, "wiki.corp.internal", A, "A 172.19.0.20,A 172.19.0.21");
	r = t_call(m, "dns.del", &rc, "{s:s, s:s}", "name", "wiki", "address", "172.19.0.20");
	assert_int_equal(rc, 0);
	assert_int_equal(json_integer_value(json_object_get(r, "deleted")), 1);
	json_decref(r);
	expect_answer(m, "wiki.corp.internal", A, "A 172.19.0.21");
	r = t_call(m, "dns.del", &rc, "{s:s}", "name", "wiki");
	assert_int_equal(rc, 0);
	json_decref(r);
	expect_rcode(m, "wiki.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	mg_mock_free(m);
	json_decref(cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* The other node's address of wiki, added while ours waited for its
 * commit (mg_mock_on_failed_commit). */
static void other_node_adds(struct mg_mock *m, void *arg)
{
	(void)arg;
	json_t *rec =
	    json_pack("{s:s, s:[s, s]}", "name", "wiki", "addresses", "172.19.0.20", "172.19.0.22");
	assert_int_equal(mg_mock_state_remote(m, "dns", "record/wiki", rec), 0);
	json_decref(rec);
}

/* In a cluster: records another node added or removed are served here;
 * a change that lost a race keeps the other node's part; without quorum
 * nothing is written. */
static void test_cluster_records(void **unused)
{
	(void)unused;
	int rc;
	struct mg_mock *m = t_mock(NULL, NULL);
	json_t *rec = json_pack("{s:s, s:[s]}", "name", "wiki", "addresses", "172.19.0.20");
	assert_int_equal(mg_mock_state_remote(m, "dns", "record/wiki", rec), 0);
	json_decref(rec);
	mg_mock_advance(m, 0);
	expect_answer(m, "wiki.corp.internal", A, "A 172.19.0.20");

	/* ours adds to theirs */
	json_decref(
	    t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "wiki", "address", "172.19.0.21"));
	assert_int_equal(rc, 0);
	expect_answer(m, "wiki.corp.internal", A, "A 172.19.0.20,A 172.19.0.21");

	/* lost a race to another node's change: tried again on it */
	mg_mock_on_failed_commit(m, other_node_adds, NULL);
	mg_mock_fail_commits(m, -ESTALE, 1);
	json_t *r =
	    t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "wiki", "address", "172.19.0.23");
	mg_mock_on_failed_commit(m, NULL, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(json_array_size(json_object_get(r, "addresses")), 3);
	json_decref(r);
	mg_mock_advance(m, 0);
	expect_answer(m, "wiki.corp.internal", A, "A 172.19.0.20,A 172.19.0.22,A 172.19.0.23");

	/* removed there: gone here */
	assert_int_equal(mg_mock_state_remote(m, "dns", "record/wiki", NULL), 0);
	mg_mock_advance(m, 0);
	expect_rcode(m, "wiki.corp.internal", A, LDNS_RCODE_NXDOMAIN);

	/* no quorum, or races lost every time: refused, nothing written */
	mg_mock_fail_commits(m, -EHOSTUNREACH, 1);
	r = t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "wiki", "address", "172.19.0.20");
	assert_string_equal(t_err(r), "unavailable");
	json_decref(r);
	mg_mock_fail_commits(m, -ESTALE, 1000);
	r = t_call(m, "dns.add", &rc, "{s:s, s:s}", "name", "wiki", "address", "172.19.0.20");
	assert_string_equal(t_err(r), "conflict");
	json_decref(r);
	mg_mock_fail_commits(m, 0, 0);
	assert_int_equal(mg_mock_state_count(m, "dns", "record/"), 0);
	expect_rcode(m, "wiki.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	mg_mock_free(m);
}

static void test_zone_answers(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, json_pack("{s:i}", "ttl", 45));
	/* NXDOMAIN with the zone's SOA in the authority section, AA set */
	ldns_pkt *p = t_udp(m, t_port(m), "nobody.corp.internal", A, -1);
	assert_non_null(p);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
	assert_true(ldns_pkt_aa(p));
	assert_int_equal(ldns_pkt_ancount(p), 0);
	assert_int_equal(ldns_pkt_nscount(p), 1);
	ldns_rr *soa = ldns_rr_list_rr(ldns_pkt_authority(p), 0);
	assert_int_equal(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
	char *owner = ldns_rdf2str(ldns_rr_owner(soa));
	assert_string_equal(owner, "corp.internal.");
	free(owner);
	assert_int_equal(ldns_rr_ttl(soa), 45);
	ldns_pkt_free(p);
	/* deeper unknown names too; the apex answers SOA and NS */
	expect_rcode(m, "a.b.nobody.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	expect_answer(m, "corp.internal", LDNS_RR_TYPE_NS, "NS ns.corp.internal.");
	/* no upstream: outside names are refused, transfers always */
	expect_rcode(m, "example.com", A, LDNS_RCODE_REFUSED);
	expect_rcode(m, "corp.internal", LDNS_RR_TYPE_AXFR, LDNS_RCODE_REFUSED);
	mg_mock_free(m);
}

static void test_truncation_and_tcp(void **unused)
{
	(void)unused;
	json_t *records = json_array();
	for (int i = 1; i <= 100; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "172.20.0.%d", i);
		json_array_append_new(records,
		                      json_pack("{s:s, s:s}", "name", "big", "address", addr));
	}
	json_t *cfg = json_pack("{s:o}", "records", records);
	struct mg_mock *m = t_mock(NULL, cfg);
	uint16_t port = t_port(m);
	/* no EDNS: 512 bytes; EDNS 4096: our 1232; both too small for 100 */
	for (int edns = -1; edns <= 4096; edns += 4097) {
		ldns_pkt *p = t_udp(m, port, "big.corp.internal", A, edns);
		assert_non_null(p);
		assert_true(ldns_pkt_tc(p));
		assert_int_equal(ldns_pkt_ancount(p), 0);
		ldns_pkt_free(p);
	}
	ldns_pkt *p = t_tcp(m, port, "big.corp.internal", A);
	assert_non_null(p);
	assert_false(ldns_pkt_tc(p));
	assert_int_equal(ldns_pkt_ancount(p), 100);
	ldns_pkt_free(p);
	p = t_tcp(m, port, "nobody.corp.internal", A);
	assert_non_null(p);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(p);
	assert_true(t_stat(m, "truncated") >= 2);
	assert_true(t_stat(m, "queries_tcp") >= 2);

	/* two queries in one write, answered on one connection; an idle
	 * connection is closed after DNS_TCP_IDLE_MS */
	uint8_t q[1100], r[70000];
	size_t l1 = t_wire("big.corp.internal", A, -1, 1, q + 2, 500), got = 0;
	q[0] = (uint8_t)(l1 >> 8);
	q[1] = (uint8_t)l1;
	size_t l2 = t_wire("nobody.corp.internal", A, -1, 2, q + 4 + l1, 500);
	q[2 + l1] = (uint8_t)(l2 >> 8);
	q[3 + l1] = (uint8_t)l2;
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	assert_int_equal(write(fd, q, l1 + l2 + 4), (ssize_t)(l1 + l2 + 4));
	int messages = 0;
	for (int i = 0; i < 400 && messages < 2; i++) {
		struct pollfd pf = {fd, POLLIN, 0};
		t_pump(m);
		if (poll(&pf, 1, 5) == 1) {
			ssize_t n = read(fd, r + got, sizeof(r) - got);
			assert_true(n > 0);
			got += (size_t)n;
		}
		messages = 0;
		for (size_t off = 0; off + 2 <= got; messages++) {
			size_t len = (size_t)r[off] << 8 | r[off + 1];
			if (off + 2 + len > got)
				break;
			off += 2 + len;
		}
	}
	assert_int_equal(messages, 2);
	mg_mock_advance(m, DNS_TCP_IDLE_MS + DNS_SWEEP_MS);
	struct pollfd pf = {fd, POLLIN, 0};
	assert_int_equal(poll(&pf, 1, 1000), 1);
	assert_int_equal(read(fd, r, sizeof(r)), 0); /* closed by the server */
	close(fd);
	mg_mock_free(m);
}

/* A fake upstream on loopback: answers A 198.18.5.5 (or stays silent). */
struct upstream {
	int fd;
	uint16_t port;
};

static void upstream_open(struct upstream *u)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(u->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(u->fd, (struct sockaddr *)&a, &len);
	u->port = ntohs(a.sin_port);
}

/* Answers whatever query waits on the socket; returns how many. */
static int upstream_answer(struct upstream *u, int rcode)
{
	uint8_t buf[1500], *wire;
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	size_t len;
	int n = 0;
	ssize_t got;
	while ((got = recvfrom(u->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen)) > 0) {
		ldns_pkt *q = t_parse(buf, (size_t)got);
		assert_non_null(q);
		ldns_pkt *r = ldns_pkt_clone(q);
		ldns_pkt_set_qr(r, true);
		ldns_pkt_set_rcode(r, (uint8_t)rcode);
		if (!rcode) {
			ldns_rr *rr = NULL;
			char text[600], *qn = ldns_rdf2str(ldns_rr_owner(
			                    ldns_rr_list_rr(ldns_pkt_question(q), 0)));
			snprintf(text, sizeof(text), "%s 60 IN A 198.18.5.5", qn);
			free(qn);
			assert_int_equal(ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL), 0);
			ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
		}
		assert_int_equal(ldns_pkt2wire(&wire, r, &len), 0);
		sendto(u->fd, wire, len, 0, (struct sockaddr *)&from, flen);
		free(wire);
		ldns_pkt_free(q);
		ldns_pkt_free(r);
		n++;
		flen = sizeof(from);
	}
	return n;
}

/* A silent upstream drains its queries without answering. */
static int upstream_silent(struct upstream *u)
{
	uint8_t buf[1500];
	int n = 0;
	while (recv(u->fd, buf, sizeof(buf), 0) > 0)
		n++;
	return n;
}

/* Sends a query and, while waiting, lets the upstreams act: `answer` says
 * which upstream answers (-1: none) and when the virtual clock moves. */
static ldns_pkt *forwarded(struct mg_mock *m, struct upstream *up, int nup, int answer, int rcode)
{
	uint8_t q[512], r[4096];
	size_t len = t_wire("www.example.test", A, -1, 0x5151, q, sizeof(q));
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(t_port(m))};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	sendto(fd, q, len, 0, (struct sockaddr *)&to, sizeof(to));
	ssize_t n = 0;
	for (int i = 0; i < 600 && n <= 0; i++) {
		struct pollfd p = {fd, POLLIN, 0};
		t_pump(m);
		for (int k = 0; k < nup; k++)
			if (k == answer)
				upstream_answer(&up[k], rcode);
			else
				upstream_silent(&up[k]);
		if (poll(&p, 1, 5) == 1)
			n = recv(fd, r, sizeof(r), 0);
		else if (i % 10 == 9)
			mg_mock_advance(m, 300); /* time passes: timeouts fire */
	}
	close(fd);
	return n > 0 ? t_parse(r, (size_t)n) : NULL;
}

static void test_forwarding(void **unused)
{
	(void)unused;
	struct upstream up[2];
	char a0[64], a1[64], buf[256];
	upstream_open(&up[0]);
	upstream_open(&up[1]);
	snprintf(a0, sizeof(a0), "127.0.0.1:%u", up[0].port);
	snprintf(a1, sizeof(a1), "127.0.0.1:%u", up[1].port);
	json_t *cfg = json_pack("{s:[s, s], s:i}", "upstream", a0, a1, "upstream_timeout_ms", 500);
	struct mg_mock *m = t_mock(NULL, cfg);

	/* the first answers */
	ldns_pkt *p = forwarded(m, up, 2, 0, 0);
	assert_non_null(p);
	assert_string_equal(t_answers(p, buf, sizeof(buf)), "A 198.18.5.5");
	assert_int_equal(ldns_pkt_id(p), 0x5151);
	ldns_pkt_free(p);

	/* the first is silent: after its timeout the second answers */
	upstream_silent(&up[0]);
	p = forwarded(m, up, 2, 1, 0);
	assert_non_null(p);
	assert_string_equal(t_answers(p, buf, sizeof(buf)), "A 198.18.5.5");
	ldns_pkt_free(p);
	assert_true(t_stat(m, "upstream_timeouts") >= 1);

	/* the second says SERVFAIL: the first is tried (and is silent) -> SERVFAIL */
	p = forwarded(m, up, 2, 1, LDNS_RCODE_SERVFAIL);
	assert_non_null(p);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
	ldns_pkt_free(p);

	/* nobody answers: SERVFAIL, and nothing is left pending */
	p = forwarded(m, up, 2, -1, 0);
	assert_non_null(p);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
	assert_int_equal(ldns_pkt_id(p), 0x5151);
	ldns_pkt_free(p);
	assert_int_equal(t_stat(m, "pending"), 0);
	/* internal names never go upstream */
	upstream_silent(&up[0]);
	upstream_silent(&up[1]);
	expect_rcode(m, "nobody.corp.internal", A, LDNS_RCODE_NXDOMAIN);
	assert_int_equal(upstream_silent(&up[0]) + upstream_silent(&up[1]), 0);
	mg_mock_free(m);
	close(up[0].fd);
	close(up[1].fd);
}

static void test_tcp_forwarding(void **unused)
{
	(void)unused;
	/* an upstream over TCP: a listener that answers one query */
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	char addr[64], buf[256];
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	getsockname(lfd, (struct sockaddr *)&a, &alen);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(a.sin_port));
	json_t *cfg = json_pack("{s:[s]}", "upstream", addr);
	struct mg_mock *m = t_mock(NULL, cfg);

	uint8_t q[514], r[4096];
	size_t len = t_wire("www.example.test", A, -1, 0x6161, q + 2, sizeof(q) - 2), got = 0;
	q[0] = (uint8_t)(len >> 8);
	q[1] = (uint8_t)len;
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(t_port(m))};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&to, sizeof(to)), 0);
	assert_int_equal(write(cfd, q, len + 2), (ssize_t)(len + 2));
	int ufd = -1;
	size_t ulen = 0;
	uint8_t ubuf[600];
	for (int i = 0; i < 400 && got < 2; i++) {
		t_pump(m);
		if (ufd < 0)
			ufd = accept(lfd, NULL, NULL);
		if (ufd >= 0) {
			ssize_t n = recv(ufd, ubuf + ulen, sizeof(ubuf) - ulen, MSG_DONTWAIT);
			if (n > 0)
				ulen += (size_t)n;
			if (ulen >= 2 && ulen == 2 + ((size_t)ubuf[0] << 8 | ubuf[1])) {
				ldns_pkt *uq = t_parse(ubuf + 2, ulen - 2);
				assert_non_null(uq);
				ldns_pkt_set_qr(uq, true);
				ldns_rr *rr = NULL;
				assert_int_equal(
				    ldns_rr_new_frm_str(&rr, "www.example.test. 60 IN A 198.18.5.6",
				                        0, NULL, NULL),
				    0);
				ldns_pkt_push_rr(uq, LDNS_SECTION_ANSWER, rr);
				uint8_t *wire;
				size_t wlen;
				assert_int_equal(ldns_pkt2wire(&wire, uq, &wlen), 0);
				uint8_t hdr[2] = {(uint8_t)(wlen >> 8), (uint8_t)wlen};
				assert_int_equal(write(ufd, hdr, 2), 2);
				assert_int_equal(write(ufd, wire, wlen), (ssize_t)wlen);
				free(wire);
				ldns_pkt_free(uq);
				ulen = 0;
			}
		}
		struct pollfd p = {cfd, POLLIN, 0};
		if (poll(&p, 1, 5) == 1) {
			ssize_t n = recv(cfd, r, sizeof(r), 0);
			if (n > 0)
				got = (size_t)n;
		}
	}
	assert_true(got > 2);
	ldns_pkt *p = t_parse(r + 2, got - 2);
	assert_non_null(p);
	assert_int_equal(ldns_pkt_id(p), 0x6161);
	assert_string_equal(t_answers(p, buf, sizeof(buf)), "A 198.18.5.6");
	ldns_pkt_free(p);
	close(cfd);
	if (ufd >= 0)
		close(ufd);
	close(lfd);
	mg_mock_free(m);
}

static void test_reload(void **unused)
{
	(void)unused;
	char err[512];
	struct mg_mock *m = t_mock(NULL, json_pack("{s:[{s:s, s:s}]}", "records", "name", "gitlab",
	                                           "address", "172.19.0.10"));
	uint16_t port = t_port(m);
	expect_answer(m, "gitlab.corp.internal", A, "A 172.19.0.10");
	/* a new zone and records, same listen address: the socket stays */
	json_t *cfg =
	    json_pack("{s:[s], s:s, s:[{s:s, s:s}]}", "listen", "127.0.0.1:0", "zone",
	              "mesh.internal", "records", "name", "vault", "address", "172.19.0.11");
	assert_int_equal(mg_mock_reload(m, "dns", cfg, err, sizeof(err)), 0);
	json_decref(cfg);
	assert_int_equal(t_port(m), port);
	expect_answer(m, "vault.mesh.internal", A, "A 172.19.0.11");
	expect_rcode(m, "gitlab.corp.internal", A, LDNS_RCODE_REFUSED); /* not ours any more */
	/* a second listen address: the first socket stays, a new one opens */
	cfg = json_pack("{s:[s, s], s:s, s:[{s:s, s:s}]}", "listen", "127.0.0.1:0", "127.0.0.2:0",
	                "zone", "mesh.internal", "records", "name", "vault", "address",
	                "172.19.0.11");
	assert_int_equal(mg_mock_reload(m, "dns", cfg, err, sizeof(err)), 0);
	json_decref(cfg);
	assert_int_equal(t_port(m), port);
	json_t *stats = t_call(m, "dns.stats", NULL, "{}");
	assert_int_equal(json_array_size(json_object_get(stats, "listen")), 2);
	json_decref(stats);
	expect_answer(m, "vault.mesh.internal", A, "A 172.19.0.11");
	/* a bad one is refused and changes nothing */
	cfg = json_pack("{s:[s], s:s}", "listen", "127.0.0.1:0", "zone", "bad zone");
	assert_int_not_equal(mg_mock_reload(m, "dns", cfg, err, sizeof(err)), 0);
	json_decref(cfg);
	expect_answer(m, "vault.mesh.internal", A, "A 172.19.0.11");
	mg_mock_free(m);
}

static void test_bad_settings(void **unused)
{
	(void)unused;
	static const char *const bad[] = {
	    "{\"listen\": [\"10.0.0.1:99999\"]}",
	    "{\"listen\": []}",
	    "{\"zone\": \"corp..internal\"}",
	    "{\"upstream\": [\"not an address\"]}",
	    "{\"ttl\": -1}",
	    "{\"upstream_timeout_ms\": 1}",
	    "{\"allow\": [\"10.0.0.0/33\"]}",
	    "{\"records\": [{\"name\": \"-x\", \"address\": \"1.2.3.4\"}]}",
	    "{\"records\": [{\"name\": \"x\", \"address\": \"1.2.3.4/8\"}]}",
	    "{\"listen\": [\"127.0.0.1:5399\"], \"upstream\": [\"127.0.0.1:5399\"]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[512];
		struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
		assert_non_null(m);
		mg_mock_log_level(m, MG_LOG_ERROR);
		json_t *cfg = json_loads(bad[i], 0, NULL);
		assert_non_null(cfg);
		int rc = mg_mock_add(m, &mg_plugin_descriptor, cfg, err, sizeof(err));
		if (!rc)
			rc = mg_mock_start(m, err, sizeof(err));
		if (!rc)
			fail_msg("config %s was accepted", bad[i]);
		json_decref(cfg);
		mg_mock_free(m);
	}
}

static void test_server_record(void **unused)
{
	(void)unused;
	struct mg_mock *m =
	    t_mock(NULL, json_pack("{s:[s, s]}", "listen", "127.0.0.1:0", "127.0.0.2:0"));
	json_t *rec = NULL;
	assert_int_equal(mg_mock_state_get(m, "dns_node", "server", &rec), 0);
	json_t *addrs = json_object_get(rec, "addresses");
	assert_int_equal(json_array_size(addrs), 2);
	assert_string_equal(json_string_value(json_array_get(addrs, 0)), "127.0.0.1");
	assert_string_equal(json_string_value(json_object_get(rec, "zone")), "corp.internal");
	json_decref(rec);
	json_t *regs = mg_mock_registrations(m, "dns");
	/* dns.add, dns.del, dns.list, dns.stats, dns.metrics */
	assert_int_equal(json_array_size(json_object_get(regs, "services")), 5);
	json_decref(regs);
	mg_mock_free(m);
}

/* A query to host:port from a socket connect()ed there: only a reply from
 * that very address is accepted (a wildcard listener must answer from the
 * address it was asked on). */
static ldns_pkt *connected_query(const char *host, uint16_t port, const char *name,
                                 ldns_rr_type type)
{
	struct sockaddr_storage ss;
	socklen_t len;
	uint8_t q[512], r[4096];
	assert_int_equal(dns_sockaddr_parse(host, port, &ss, &len), 0);
	int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	size_t qlen = t_wire(name, type, -1, 7, q, sizeof(q));
	assert_int_equal(send(fd, q, qlen, 0), (ssize_t)qlen);
	struct pollfd pf = {fd, POLLIN, 0};
	ssize_t n = poll(&pf, 1, 2000) == 1 ? recv(fd, r, sizeof(r), 0) : 0;
	close(fd);
	return n > 0 ? t_parse(r, (size_t)n) : NULL;
}

static void test_wildcard_and_ipv6(void **unused)
{
	(void)unused;
	char buf[256];
	struct mg_mock *m =
	    t_mock(NULL, json_pack("{s:[s, s], s:[{s:s, s:s}]}", "listen", "0.0.0.0:0", "[::1]:0",
	                           "records", "name", "gitlab", "address", "172.19.0.10"));
	json_t *stats = t_call(m, "dns.stats", NULL, "{}");
	const char *v4 = json_string_value(json_array_get(json_object_get(stats, "listen"), 0));
	const char *v6 = json_string_value(json_array_get(json_object_get(stats, "listen"), 1));
	uint16_t p4 = (uint16_t)atoi(strrchr(v4, ':') + 1),
	         p6 = (uint16_t)atoi(strrchr(v6, ':') + 1);
	json_decref(stats);
	/* asked on 127.0.0.2, the wildcard socket answers from 127.0.0.2 */
	ldns_pkt *p = connected_query("127.0.0.2", p4, "gitlab.corp.internal", A);
	assert_non_null(p);
	assert_string_equal(t_answers(p, buf, sizeof(buf)), "A 172.19.0.10");
	ldns_pkt_free(p);
	p = connected_query("::1", p6, "gitlab.corp.internal", A);
	assert_non_null(p);
	assert_string_equal(t_answers(p, buf, sizeof(buf)), "A 172.19.0.10");
	ldns_pkt_free(p);
	/* the server record lists no wildcard address */
	json_t *rec = NULL;
	assert_int_equal(mg_mock_state_get(m, "dns_node", "server", &rec), 0);
	assert_int_equal(json_array_size(json_object_get(rec, "addresses")), 1);
	json_decref(rec);
	mg_mock_free(m);
}

/* A UDP query to host:53 (the default port); the reply's answers as text,
 * "" when there is no reply. */
static const char *answers_at(const char *host, const char *name, ldns_rr_type type, char *buf,
                              size_t len)
{
	ldns_pkt *p = connected_query(host, 53, name, type);
	snprintf(buf, len, "%s", "");
	if (p)
		t_answers(p, buf, len);
	ldns_pkt_free(p);
	return buf;
}

static void expect_server_record(struct mg_mock *m, const char *address)
{
	json_t *rec = NULL;
	assert_int_equal(mg_mock_state_get(m, "dns_node", "server", &rec), 0);
	json_t *addrs = json_object_get(rec, "addresses");
	if (!address) {
		assert_int_equal(json_array_size(addrs), 0);
	} else {
		assert_int_equal(json_array_size(addrs), 1);
		assert_string_equal(json_string_value(json_array_get(addrs, 0)), address);
	}
	json_decref(rec);
}

/* No listen setting: the server listens on the gateway's VPN address from
 * wg/server, port 53, tells clients that address (dns_node/server), names it
 * ns.ZONE (the zone's NS and MNAME, with its PTR), and follows it when it
 * changes. A loopback address per process stands for the VPN address, so
 * that real queries reach it and parallel runs do not collide. */
static void test_listen_follows_vpn(void **unused)
{
	(void)unused;
	char vpn1[32], vpn2[32], prefix[40], buf[512], ptr[64];
	unsigned pid = (unsigned)getpid();
	snprintf(vpn1, sizeof(vpn1), "127.77.%u.%u", (pid >> 8) & 0xff, (pid & 0x7f) + 1);
	snprintf(vpn2, sizeof(vpn2), "127.78.%u.%u", (pid >> 8) & 0xff, (pid & 0x7f) + 1);
	struct mg_mock *m = t_mock_listen(NULL, NULL, 1);
	/* before wireguard has said where: nowhere, and no address for clients */
	json_t *stats = t_call(m, "dns.stats", NULL, "{}");
	assert_int_equal(json_array_size(json_object_get(stats, "listen")), 0);
	json_decref(stats);
	expect_server_record(m, NULL);

	snprintf(prefix, sizeof(prefix), "%s/16", vpn1);
	t_vpn(m, prefix);
	stats = t_call(m, "dns.stats", NULL, "{}");
	snprintf(buf, sizeof(buf), "%s:53", vpn1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(stats, "listen"), 0)),
	                    buf);
	json_decref(stats);
	expect_server_record(m, vpn1);
	snprintf(buf, sizeof(buf), "A %s", vpn1);
	char got[512];
	assert_string_equal(answers_at(vpn1, "ns.corp.internal", A, got, sizeof(got)), buf);
	/* the gateway's own address has a name */
	unsigned a, b, c, dd;
	assert_int_equal(sscanf(vpn1, "%u.%u.%u.%u", &a, &b, &c, &dd), 4);
	snprintf(ptr, sizeof(ptr), "%u.%u.%u.%u.in-addr.arpa", dd, c, b, a);
	assert_string_equal(answers_at(vpn1, ptr, LDNS_RR_TYPE_PTR, got, sizeof(got)),
	                    "PTR ns.corp.internal.");

	/* the VPN address changes: the server moves with it */
	snprintf(prefix, sizeof(prefix), "%s/16", vpn2);
	t_vpn(m, prefix);
	snprintf(buf, sizeof(buf), "A %s", vpn2);
	assert_string_equal(answers_at(vpn2, "ns.corp.internal", A, got, sizeof(got)), buf);
	assert_string_equal(answers_at(vpn1, "ns.corp.internal", A, got, sizeof(got)), "");
	expect_server_record(m, vpn2);
	mg_mock_free(m);
}

/* ns.ZONE is the name server's: a device of that name is ns-ID; a service
 * record of that name gives the name server its addresses. */
static void test_name_server_name(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL);
	t_vpn(m, "10.0.0.1/24");
	t_device(m, "4444444444444444", "nina", "ns", "10.0.0.9/32", "active", TS);
	expect_answer(m, "ns.corp.internal", A, "A 127.0.0.1");
	expect_answer(m, "ns-4444444444444444.corp.internal", A, "A 10.0.0.9");
	expect_answer(m, "corp.internal", LDNS_RR_TYPE_NS, "NS ns.corp.internal.");
	mg_mock_free(m);

	m = t_mock(
	    NULL, json_pack("{s:[{s:s, s:s}]}", "records", "name", "ns", "address", "172.19.0.53"));
	expect_answer(m, "ns.corp.internal", A, "A 172.19.0.53");
	mg_mock_free(m);
}

/* ---- the index kept incrementally equals the index built whole ---- */

/* One name of an index as text: flags, zone, children, and each block's
 * RRs sorted (the order within an RRset means nothing); the SOA by count
 * (its serial differs). */
struct snapshot {
	const struct dns_index *idx;
	json_t *all;
};

static void snapshot_node(const struct dns_node *n, void *arg)
{
	struct snapshot *snap = arg;
	char name[DNS_TEXT_MAX], zone[DNS_TEXT_MAX] = "-", buf[8192];
	const struct dns_node *apex = dns_node_zone(snap->idx, n);
	dns_name_to_text(n->name, n->len, name, sizeof(name));
	if (apex)
		dns_name_to_text(apex->name, apex->len, zone, sizeof(zone));
	json_t *rrs = json_array();
	for (int b = 0; b < DNS_B_COUNT; b++) {
		struct dns_block block = dns_node_block(n, b);
		const struct dns_block *bl = &block;
		for (size_t off = 0; b != DNS_B_SOA && off < bl->len;) {
			size_t len = 2 + ((size_t)bl->wire[off] << 8 | bl->wire[off + 1]), k = 0;
			k += (size_t)snprintf(buf, sizeof(buf), "%d:", b);
			for (size_t i = 0; i < len && k + 3 < sizeof(buf); i++)
				k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%02x",
				                      bl->wire[off + i]);
			json_array_append_new(rrs, json_string(buf));
			off += len;
		}
	}
	size_t count = json_array_size(rrs);
	const char **v = calloc(count + 1, sizeof(*v));
	for (size_t i = 0; i < count; i++)
		v[i] = json_string_value(json_array_get(rrs, i));
	qsort(v, count, sizeof(*v), strcmp_p);
	int k = snprintf(buf, sizeof(buf), "flags %d zone %s children %u soa %u:", n->flags, zone,
	                 n->children, dns_node_block(n, DNS_B_SOA).count);
	for (size_t i = 0; i < count && k > 0 && (size_t)k < sizeof(buf); i++)
		k += snprintf(buf + k, sizeof(buf) - (size_t)k, " %s", v[i]);
	json_object_set_new(snap->all, name, json_string(buf));
	free(v);
	json_decref(rrs);
}

/* A PTR of the address table, under "ptr ADDRESS": its targets sorted. */
static void snapshot_ptr(uint32_t addr, const struct dns_node *target, void *arg)
{
	json_t *ptrs = arg;
	char key[32], name[DNS_TEXT_MAX];
	snprintf(key, sizeof(key), "ptr %u.%u.%u.%u", addr >> 24, addr >> 16 & 255, addr >> 8 & 255,
	         addr & 255);
	dns_name_to_text(target->name, target->len, name, sizeof(name));
	json_t *list = json_object_get(ptrs, key);
	if (!list)
		json_object_set_new(ptrs, key, list = json_array());
	size_t i = 0;
	while (i < json_array_size(list) &&
	       strcmp(json_string_value(json_array_get(list, i)), name) < 0)
		i++;
	json_array_insert_new(list, i, json_string(name));
}

static json_t *snapshot(const struct dns_index *idx)
{
	struct snapshot snap = {idx, json_object()};
	dns_index_foreach(idx, snapshot_node, &snap);
	assert_int_equal(json_object_size(snap.all), dns_index_names(idx));
	json_t *ptrs = json_object();
	dns_index_foreach_ptr(idx, snapshot_ptr, ptrs);
	json_object_update(snap.all, ptrs);
	json_decref(ptrs);
	return snap.all;
}

/* The index built from scratch: the devices read again from state into a
 * table of their own, named by the rule from nothing. */
static json_t *rebuilt(struct dns *d)
{
	struct dns_names *live = d->devices;
	d->devices = dns_names_new();
	assert_int_equal(dns_sources_load(d), 0);
	struct dns_index *idx = dns_build(d, 1);
	assert_non_null(idx);
	json_t *snap = snapshot(idx);
	dns_index_free(idx);
	dns_names_free(d->devices);
	d->devices = live;
	return snap;
}

struct model_dev {
	int present, active;
	char name[64], address[48];
	json_int_t created;
};

/* The device names by the rule of docs/dns.md, worked out the plain way
 * (sorted by label, age, id; labels first, then fallbacks): name -> id. */
static json_t *expected_names(struct model_dev *devs, int n)
{
	char *keys[64];
	int count = 0;
	json_t *taken = json_pack("{s:b, s:b}", "gitlab", 1, "ns", 1), *names = json_object();
	for (int i = 0; i < n; i++) {
		char label[DNS_LABEL_MAX + 1];
		if (!devs[i].present || !devs[i].active)
			continue;
		dns_device_label(devs[i].name, "u", label);
		/* label, age (fixed width), id: one string sorts them */
		keys[count] = malloc(160);
		snprintf(keys[count++], 160, "%s %020lld %016x", label, (long long)devs[i].created,
		         i + 1);
	}
	qsort(keys, (size_t)count, sizeof(*keys), strcmp_p);
	char *given[64] = {0};
	for (int i = 0; i < count; i++) {
		char label[DNS_LABEL_MAX + 1];
		sscanf(keys[i], "%63s", label);
		char prev[DNS_LABEL_MAX + 1] = "";
		if (i)
			sscanf(keys[i - 1], "%63s", prev);
		if ((!i || strcmp(label, prev)) && !json_object_get(taken, label)) {
			json_object_set_new(taken, label, json_true());
			json_object_set_new(names, label, json_string(strrchr(keys[i], ' ') + 1));
			given[i] = keys[i];
		}
	}
	for (int i = 0; i < count; i++) {
		char label[DNS_LABEL_MAX + 1], fallback[DNS_LABEL_MAX + 1];
		if (given[i])
			continue;
		sscanf(keys[i], "%63s", label);
		dns_device_fallback(label, strrchr(keys[i], ' ') + 1, fallback);
		if (json_object_get(taken, fallback))
			continue;
		json_object_set_new(taken, fallback, json_true());
		json_object_set_new(names, fallback, json_string(strrchr(keys[i], ' ') + 1));
	}
	for (int i = 0; i < count; i++)
		free(keys[i]);
	json_decref(taken);
	return names;
}

static json_t *listed_names(struct mg_mock *m)
{
	json_t *list = t_call(m, "dns.list", NULL, "{s:s}", "source", "device"), *r, *names;
	size_t i;
	names = json_object();
	json_array_foreach(json_object_get(list, "records"), i, r)
	{
		char name[256];
		snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(r, "name")));
		*strstr(name, ".corp.internal") = 0;
		json_object_set(names, name, json_object_get(r, "device"));
	}
	json_decref(list);
	return names;
}

static void expect_same(json_t *got, json_t *want, int step)
{
	if (json_equal(got, want))
		return;
	char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
	char *w = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
	fail_msg("step %d: incremental\n%s\nexpected\n%s", step, g, w);
}

static void test_incremental_index(void **unused)
{
	(void)unused;
	/* few labels, so that names collide: a service name, one equal to
	 * another device's fallback, spellings of one label */
	static const char *const names[] = {
	    "alpha", "Alpha", "beta", "gitlab", "alpha-0000000000000003", "gamma", "",
	};
	enum { NDEV = 24, STEPS = 2000 };
	struct model_dev devs[NDEV] = {{0}};
	json_t *cfg =
	    json_pack("{s:[{s:s, s:s}]}", "records", "name", "gitlab", "address", "10.0.0.9");
	struct mg_mock *m = t_mock(NULL, cfg);
	t_vpn(m, "10.0.0.1/16"); /* reverse zones of /24: empty non-terminals come and go */
	struct dns *d = mg_mock_ctx(m, "dns")->self;
	unsigned seed = 11;
	int patched = 0;
	for (int step = 0; step < STEPS; step++) {
		int i = rand_r(&seed) % NDEV, op = rand_r(&seed) % 10;
		char id[17];
		snprintf(id, sizeof(id), "%016x", i + 1);
		struct model_dev *x = &devs[i];
		uint32_t serial = dns_index_serial(d->srv.index);
		if (op == 0 && x->present) { /* deleted */
			mg_ctx *pa = mg_mock_ctx(m, "preauth");
			mg_txn *txn;
			assert_int_equal(mg_txn_begin(pa, 0, &txn), 0);
			assert_int_equal(mg_state_del(pa, txn, "devices", id), 0);
			assert_int_equal(mg_txn_commit(pa, txn), 0);
			json_t *gone = json_pack("{s:s, s:s}", "id", id, "state", "deleted");
			mg_mock_publish(m, "device.changed", gone);
			json_decref(gone);
			mg_mock_advance(m, 0);
			x->present = 0;
		} else {
			if (!x->present || op < 5) /* onboarded or renamed */
				snprintf(x->name, sizeof(x->name), "%s",
				         names[rand_r(&seed) % (sizeof(names) / sizeof(*names))]);
			if (!x->present || op == 5) { /* a new address, maybe another's */
				int a = rand_r(&seed) % 40;
				if (a < 4)
					snprintf(x->address, sizeof(x->address), "fd00::%x/128",
					         a + 2);
				else
					snprintf(x->address, sizeof(x->address), "10.0.%d.%d/32",
					         a % 3, a);
			}
			if (!x->present)
				x->created = TS + rand_r(&seed) % 3; /* ties: the id decides */
			x->active = op != 6;                         /* else disabled */
			x->present = 1;
			t_device(m, id, "u", x->name, x->address, x->active ? "active" : "disabled",
			         x->created);
		}
		patched += dns_index_serial(d->srv.index) != serial;
		/* the rule, worked out apart, and the index built whole */
		json_t *got = listed_names(m), *want = expected_names(devs, NDEV);
		expect_same(got, want, step);
		json_decref(got);
		json_decref(want);
		if (step % 25 == 0 || step == STEPS - 1) {
			got = snapshot(d->srv.index);
			want = rebuilt(d);
			expect_same(got, want, step);
			json_decref(got);
			json_decref(want);
		}
	}
	assert_true(patched > STEPS / 3); /* the changes were patches, not nothing */
	mg_mock_free(m);
}

/* The PTRs of devices' IPv4 addresses live in the index's address table:
 * each step answers as it did when every reverse name was a node, and the
 * index kept equals the one built whole. */
static void expect_rebuilt(struct mg_mock *m, int step)
{
	struct dns *d = mg_mock_ctx(m, "dns")->self;
	json_t *got = snapshot(d->srv.index), *want = rebuilt(d);
	expect_same(got, want, step);
	json_decref(got);
	json_decref(want);
}

static void expect_nodata(struct mg_mock *m, const char *name, ldns_rr_type type)
{
	ldns_pkt *p = t_udp(m, t_port(m), name, type, -1);
	assert_non_null(p);
	if (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR || ldns_pkt_ancount(p) ||
	    ldns_pkt_nscount(p) != 1)
		fail_msg("%s: rcode %d, %d answers, %d authority: not NODATA", name,
		         ldns_pkt_get_rcode(p), ldns_pkt_ancount(p), ldns_pkt_nscount(p));
	assert_true(ldns_pkt_aa(p));
	ldns_pkt_free(p);
}

static void test_ptr_table(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL);
	t_vpn(m, "10.0.0.1/8"); /* one reverse zone, 10.in-addr.arpa: non-terminals below */
	const ldns_rr_type PTR = LDNS_RR_TYPE_PTR;
	t_device(m, "1111111111111111", "u", "anna", "10.64.0.5/32", "active", TS);
	t_device(m, "2222222222222222", "u", "ben", "10.64.0.6/32", "active", TS);
	expect_answer(m, "5.0.64.10.in-addr.arpa", PTR, "PTR anna.corp.internal.");
	expect_answer(m, "5.0.64.10.in-addr.arpa", LDNS_RR_TYPE_ANY, "PTR anna.corp.internal.");
	expect_nodata(m, "5.0.64.10.in-addr.arpa", A);
	expect_nodata(m, "0.64.10.in-addr.arpa", PTR); /* empty non-terminals */
	expect_nodata(m, "64.10.in-addr.arpa", PTR);
	expect_rcode(m, "05.0.64.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN); /* not as written */
	expect_rcode(m, "7.0.64.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN);
	expect_rebuilt(m, 0);

	/* two devices swap addresses */
	t_device(m, "1111111111111111", "u", "anna", "10.64.0.6/32", "active", TS);
	expect_answer(m, "6.0.64.10.in-addr.arpa", PTR,
	              "PTR ben.corp.internal.,PTR anna.corp.internal.");
	t_device(m, "2222222222222222", "u", "ben", "10.64.0.5/32", "active", TS);
	expect_answer(m, "5.0.64.10.in-addr.arpa", PTR, "PTR ben.corp.internal.");
	expect_answer(m, "6.0.64.10.in-addr.arpa", PTR, "PTR anna.corp.internal.");
	expect_rebuilt(m, 1);

	/* a device renamed: its PTR follows its name */
	t_device(m, "1111111111111111", "u", "anna2", "10.64.0.6/32", "active", TS);
	expect_answer(m, "6.0.64.10.in-addr.arpa", PTR, "PTR anna2.corp.internal.");
	expect_rebuilt(m, 2);

	/* a device removed, its address reused by another */
	t_device(m, "2222222222222222", "u", "ben", "10.64.0.5/32", "disabled", TS);
	expect_rcode(m, "5.0.64.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN);
	expect_nodata(m, "0.64.10.in-addr.arpa", PTR); /* anna is still below */
	t_device(m, "3333333333333333", "u", "cleo", "10.64.0.5/32", "active", TS);
	expect_answer(m, "5.0.64.10.in-addr.arpa", PTR, "PTR cleo.corp.internal.");
	expect_rebuilt(m, 3);

	/* an empty non-terminal appears with the first device below it and
	 * goes with the last */
	expect_rcode(m, "0.65.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN);
	t_device(m, "4444444444444444", "u", "dora", "10.65.0.9/32", "active", TS);
	expect_nodata(m, "0.65.10.in-addr.arpa", PTR);
	expect_nodata(m, "65.10.in-addr.arpa", PTR);
	expect_rebuilt(m, 4);
	t_device(m, "4444444444444444", "u", "dora", "10.65.0.9/32", "disabled", TS);
	expect_rcode(m, "9.0.65.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN);
	expect_rcode(m, "0.65.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN);
	expect_rcode(m, "65.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN);
	t_device(m, "1111111111111111", "u", "anna2", "10.64.0.6/32", "disabled", TS);
	t_device(m, "3333333333333333", "u", "cleo", "10.64.0.5/32", "disabled", TS);
	expect_rcode(m, "0.64.10.in-addr.arpa", PTR, LDNS_RCODE_NXDOMAIN);
	expect_nodata(m, "10.in-addr.arpa", PTR); /* the apex stays */
	expect_rebuilt(m, 5);
	mg_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_device_names),
	    cmocka_unit_test(test_collisions),
	    cmocka_unit_test(test_runtime_records),
	    cmocka_unit_test(test_cluster_records),
	    cmocka_unit_test(test_zone_answers),
	    cmocka_unit_test(test_truncation_and_tcp),
	    cmocka_unit_test(test_forwarding),
	    cmocka_unit_test(test_tcp_forwarding),
	    cmocka_unit_test(test_reload),
	    cmocka_unit_test(test_bad_settings),
	    cmocka_unit_test(test_server_record),
	    cmocka_unit_test(test_wildcard_and_ipv6),
	    cmocka_unit_test(test_listen_follows_vpn),
	    cmocka_unit_test(test_name_server_name),
	    cmocka_unit_test(test_incremental_index),
	    cmocka_unit_test(test_ptr_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
