/* wg_peers_reconcile against a mock back end: the device is what a daemon
 * would answer to get=1 (UAPI text), and every write is kept as the
 * set=1 request it would send. What matters is what is sent: nothing for
 * an unchanged device, only the peers that differ otherwise, never
 * replace_peers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wg_internal.h"
#include "wg_uapi.h"

#define KEY_A "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY_B "2222222222222222222222222222222222222222222222222222222222222222"
#define KEY_C "3333333333333333333333333333333333333333333333333333333333333333"
#define KEY_D "4444444444444444444444444444444444444444444444444444444444444444"
#define PSK   "5555555555555555555555555555555555555555555555555555555555555555"
#define ZERO  "0000000000000000000000000000000000000000000000000000000000000000"

/* The device as wireguard-go reads it back: A with a live session and an
 * endpoint it learnt, B with two prefixes, C with a preshared key. */
static const char DEVICE[] = "private_key=" KEY_D "\n"
                             "listen_port=51820\n"
                             "public_key=" KEY_A "\n"
                             "preshared_key=" ZERO "\n"
                             "protocol_version=1\n"
                             "endpoint=192.0.2.7:40001\n"
                             "last_handshake_time_sec=1700000000\n"
                             "last_handshake_time_nsec=5\n"
                             "tx_bytes=900\n"
                             "rx_bytes=1200\n"
                             "persistent_keepalive_interval=0\n"
                             "allowed_ip=10.0.0.2/32\n"
                             "public_key=" KEY_B "\n"
                             "preshared_key=" ZERO "\n"
                             "persistent_keepalive_interval=0\n"
                             "allowed_ip=10.0.3.0/24\n"
                             "allowed_ip=fd00::3/128\n"
                             "public_key=" KEY_C "\n"
                             "preshared_key=" PSK "\n"
                             "persistent_keepalive_interval=0\n"
                             "allowed_ip=10.0.0.4/32\n"
                             "errno=0\n"
                             "\n";

static struct {
	const char *device; /* the answer to get=1 */
	int gets, sets;
	char *sent; /* the last set=1 request */
} mock;

static int mock_get(const char *ifname, struct wg_device **out, char *err, size_t errlen)
{
	mock.gets++;
	int ret = wg_uapi_parse_get(mock.device, strlen(mock.device), out, err, errlen);
	if (!ret)
		snprintf((*out)->name, sizeof((*out)->name), "%s", ifname);
	return ret;
}

static int mock_set(const struct wg_device *dev, char *err, size_t errlen)
{
	size_t len;

	(void)err;
	(void)errlen;
	char *req;

	mock.sets++;
	free(mock.sent);
	assert_int_equal(wg_uapi_format_set(dev, &req, &len), 0);
	/* the request is bytes, not a string: keep it as one to compare */
	mock.sent = strndup(req, len);
	free(req);
	assert_non_null(mock.sent);
	return 0;
}

static const struct wg_backend mock_backend = {.name = "mock", .get = mock_get, .set = mock_set};

static int reset(void **state)
{
	(void)state;
	free(mock.sent);
	memset(&mock, 0, sizeof(mock));
	mock.device = DEVICE;
	return 0;
}

/* The peers DEVICE has, as a caller would list them: in another order,
 * B's prefixes the other way round and one written with its host bits. */
struct wanted {
	struct wg_peer peers[4];
	struct wg_allowed_ip ips[4][2];
	size_t n;
};

static void peer(struct wanted *w, const char *hex, const char *ip1, const char *ip2)
{
	struct wg_peer *p = &w->peers[w->n];
	struct wg_allowed_ip *ips = w->ips[w->n];

	memset(p, 0, sizeof(*p));
	assert_int_equal(wg_key_from_hex(p->public_key, hex), 0);
	assert_int_equal(wg_allowed_ip_parse(&ips[0], ip1), 0);
	p->n_allowed_ips = 1;
	if (ip2) {
		assert_int_equal(wg_allowed_ip_parse(&ips[1], ip2), 0);
		p->n_allowed_ips = 2;
	}
	p->allowed_ips = ips;
	w->n++;
}

static void as_the_device(struct wanted *w)
{
	w->n = 0;
	peer(w, KEY_C, "10.0.0.4/32", NULL);
	peer(w, KEY_B, "fd00::3/128", "10.0.3.9/24");
	peer(w, KEY_A, "10.0.0.2/32", NULL);
	assert_int_equal(wg_key_from_hex(w->peers[0].preshared_key, PSK), 0);
	w->peers[0].flags = WG_PEER_HAS_PRESHARED_KEY;
	/* asked for, and what the device has */
	w->peers[2].flags = WG_PEER_HAS_KEEPALIVE;
}

static int reconcile(struct wanted *w, struct wg_reconcile_counts *counts)
{
	char err[200] = "";
	int ret =
	    wg_peers_reconcile(&mock_backend, "wg0", w->peers, w->n, counts, err, sizeof(err));
	if (ret)
		print_message("reconcile: %s\n", err);
	return ret;
}

static void assert_counts(const struct wg_reconcile_counts *c, size_t added, size_t changed,
                          size_t removed)
{
	assert_int_equal(c->added, added);
	assert_int_equal(c->changed, changed);
	assert_int_equal(c->removed, removed);
}

/* The whole point: a device that is right gets no write at all, so that
 * no session restarts and nothing is sent. */
static void test_unchanged_sends_nothing(void **state)
{
	struct wanted w;
	struct wg_reconcile_counts c;

	(void)state;
	as_the_device(&w);
	assert_int_equal(reconcile(&w, &c), 0);
	assert_int_equal(mock.gets, 1);
	assert_int_equal(mock.sets, 0);
	assert_null(mock.sent);
	assert_counts(&c, 0, 0, 0);
}

static void test_added_peer_alone(void **state)
{
	struct wanted w;
	struct wg_reconcile_counts c;

	(void)state;
	as_the_device(&w);
	peer(&w, KEY_D, "10.0.0.5/32", NULL);
	assert_int_equal(reconcile(&w, &c), 0);
	assert_int_equal(mock.sets, 1);
	assert_string_equal(mock.sent, "set=1\n"
	                               "public_key=" KEY_D "\n"
	                               "replace_allowed_ips=true\n"
	                               "allowed_ip=10.0.0.5/32\n"
	                               "\n");
	assert_counts(&c, 1, 0, 0);
}

static void test_removed_peer_alone(void **state)
{
	struct wanted w;
	struct wg_reconcile_counts c;

	(void)state;
	w.n = 0; /* B goes */
	peer(&w, KEY_A, "10.0.0.2/32", NULL);
	peer(&w, KEY_C, "10.0.0.4/32", NULL);
	assert_int_equal(wg_key_from_hex(w.peers[1].preshared_key, PSK), 0);
	w.peers[1].flags = WG_PEER_HAS_PRESHARED_KEY;
	assert_int_equal(reconcile(&w, &c), 0);
	assert_int_equal(mock.sets, 1);
	assert_string_equal(mock.sent, "set=1\n"
	                               "public_key=" KEY_B "\n"
	                               "remove=true\n"
	                               "\n");
	assert_counts(&c, 0, 0, 1);
}

/* One prefix of B moved, A's address too: both are written with all their
 * prefixes (replace_allowed_ips), C is not. */
static void test_changed_allowed_ips(void **state)
{
	struct wanted w;
	struct wg_reconcile_counts c;

	(void)state;
	as_the_device(&w);
	assert_int_equal(wg_allowed_ip_parse(&w.ips[1][1], "10.0.4.0/24"), 0);
	assert_int_equal(wg_allowed_ip_parse(&w.ips[2][0], "10.0.0.3/32"), 0);
	assert_int_equal(reconcile(&w, &c), 0);
	assert_int_equal(mock.sets, 1);
	assert_string_equal(mock.sent, "set=1\n"
	                               "public_key=" KEY_B "\n"
	                               "replace_allowed_ips=true\n"
	                               "allowed_ip=fd00::3/128\n"
	                               "allowed_ip=10.0.4.0/24\n"
	                               "public_key=" KEY_A "\n"
	                               "persistent_keepalive_interval=0\n"
	                               "replace_allowed_ips=true\n"
	                               "allowed_ip=10.0.0.3/32\n"
	                               "\n");
	assert_counts(&c, 0, 2, 0);

	/* one prefix fewer is a change too */
	reset(NULL);
	as_the_device(&w);
	w.peers[1].n_allowed_ips = 1;
	assert_int_equal(reconcile(&w, &c), 0);
	assert_non_null(mock.sent);
	assert_non_null(strstr(mock.sent, "public_key=" KEY_B "\n"));
	assert_counts(&c, 0, 1, 0);
}

/* A preshared key the list does not give is taken away (written as zeros);
 * a keepalive or an endpoint the list gives is written when it differs. */
static void test_changed_psk_keepalive_endpoint(void **state)
{
	struct wanted w;
	struct wg_reconcile_counts c;

	(void)state;
	as_the_device(&w);
	w.peers[0].flags = 0;
	w.peers[2].persistent_keepalive = 25;
	assert_int_equal(reconcile(&w, &c), 0);
	/* their allowed IPs are right: not written (a rewrite would leave them
	 * on no peer for a moment) */
	assert_string_equal(mock.sent, "set=1\n"
	                               "public_key=" KEY_C "\n"
	                               "update_only=true\n"
	                               "preshared_key=" ZERO "\n"
	                               "public_key=" KEY_A "\n"
	                               "update_only=true\n"
	                               "persistent_keepalive_interval=25\n"
	                               "\n");
	assert_counts(&c, 0, 2, 0);

	/* A's learnt endpoint is left alone unless the list names another */
	reset(NULL);
	as_the_device(&w);
	assert_int_equal(wg_endpoint_parse(&w.peers[2].endpoint, "192.0.2.7:40001"), 0);
	assert_int_equal(reconcile(&w, &c), 0);
	assert_int_equal(mock.sets, 0);
	assert_int_equal(wg_endpoint_parse(&w.peers[2].endpoint, "192.0.2.8:40001"), 0);
	assert_int_equal(reconcile(&w, &c), 0);
	assert_int_equal(mock.sets, 1);
	assert_non_null(strstr(mock.sent, "endpoint=192.0.2.8:40001\n"));
	assert_counts(&c, 0, 1, 0);
}

/* Added, changed and removed together: one write, removals last (a new
 * peer takes its addresses from a peer that goes: never on no peer). */
static void test_one_write_for_all(void **state)
{
	struct wanted w;
	struct wg_reconcile_counts c;

	(void)state;
	w.n = 0; /* C goes, A stays, B changes, D comes */
	peer(&w, KEY_A, "10.0.0.2/32", NULL);
	peer(&w, KEY_B, "fd00::4/128", "10.0.3.9/24");
	peer(&w, KEY_D, "10.0.0.5/32", NULL);
	assert_int_equal(reconcile(&w, &c), 0);
	assert_int_equal(mock.sets, 1);
	assert_string_equal(mock.sent, "set=1\n"
	                               "public_key=" KEY_B "\n"
	                               "replace_allowed_ips=true\n"
	                               "allowed_ip=fd00::4/128\n"
	                               "allowed_ip=10.0.3.9/24\n"
	                               "public_key=" KEY_D "\n"
	                               "replace_allowed_ips=true\n"
	                               "allowed_ip=10.0.0.5/32\n"
	                               "public_key=" KEY_C "\n"
	                               "remove=true\n"
	                               "\n");
	assert_counts(&c, 1, 1, 1);
}

/* No peers wanted: each is removed by name, not by replace_peers. */
static void test_empty_list_removes_each(void **state)
{
	struct wg_reconcile_counts c;
	char err[200];

	(void)state;
	assert_int_equal(wg_peers_reconcile(&mock_backend, "wg0", NULL, 0, &c, err, sizeof(err)),
	                 0);
	assert_string_equal(mock.sent, "set=1\n"
	                               "public_key=" KEY_A "\n"
	                               "remove=true\n"
	                               "public_key=" KEY_B "\n"
	                               "remove=true\n"
	                               "public_key=" KEY_C "\n"
	                               "remove=true\n"
	                               "\n");
	assert_counts(&c, 0, 0, 3);
}

/* Bad input: a clear error, and nothing written. */
static void test_bad_lists_change_nothing(void **state)
{
	struct wanted w;
	struct wg_reconcile_counts c;
	char err[200] = "";

	(void)state;
	as_the_device(&w);
	peer(&w, KEY_B, "10.0.0.9/32", NULL);
	assert_int_equal(
	    wg_peers_reconcile(&mock_backend, "wg0", w.peers, w.n, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "listed twice"));
	assert_int_equal(mock.sets, 0);

	as_the_device(&w);
	peer(&w, KEY_D, "10.0.0.5/32", NULL);
	w.ips[3][0].cidr = 33;
	assert_int_equal(
	    wg_peers_reconcile(&mock_backend, "wg0", w.peers, w.n, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/33"));
	assert_int_equal(mock.sets, 0);
	assert_counts(&c, 0, 0, 0);
}

/* 10,000 peers read back as they are wanted: no write, and every one is
 * found by its key (a diff that lost a peer in the table would add it). */
static void test_many_unchanged(void **state)
{
	enum { N = 10000 };
	struct wg_peer *want = calloc(N, sizeof(*want));
	struct wg_allowed_ip *ips = calloc(N, sizeof(*ips));
	size_t cap = 256 + N * 160, len = 0;
	char *text = malloc(cap), hex[WG_KEY_HEX_LEN];
	struct wg_reconcile_counts c;

	(void)state;
	assert_non_null(want);
	assert_non_null(ips);
	assert_non_null(text);
	for (size_t i = 0; i < N; i++) {
		char ip[32];

		wg_key_generate_preshared(want[i].public_key);
		snprintf(ip, sizeof(ip), "10.%zu.%zu.%zu/32", 100 + i / 65536, i / 256 % 256,
		         i % 256);
		assert_int_equal(wg_allowed_ip_parse(&ips[i], ip), 0);
		want[i].allowed_ips = &ips[i];
		want[i].n_allowed_ips = 1;
		wg_key_to_hex(hex, want[i].public_key);
		len += (size_t)snprintf(text + len, cap - len, "public_key=%s\nallowed_ip=%s\n",
		                        hex, ip);
	}
	snprintf(text + len, cap - len, "errno=0\n\n");
	mock.device = text;
	assert_int_equal(wg_peers_reconcile(&mock_backend, "wg0", want, N, &c, NULL, 0), 0);
	assert_int_equal(mock.sets, 0);
	assert_counts(&c, 0, 0, 0);
	/* and the last one gone is the one removal */
	assert_int_equal(wg_peers_reconcile(&mock_backend, "wg0", want, N - 1, &c, NULL, 0), 0);
	assert_int_equal(mock.sets, 1);
	assert_counts(&c, 0, 0, 1);
	wg_key_to_hex(hex, want[N - 1].public_key);
	assert_non_null(strstr(mock.sent, hex));
	assert_int_equal(strlen(mock.sent), strlen("set=1\npublic_key=\nremove=true\n\n") + 64);
	free(text);
	free(ips);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_unchanged_sends_nothing, reset, reset),
	    cmocka_unit_test_setup_teardown(test_added_peer_alone, reset, reset),
	    cmocka_unit_test_setup_teardown(test_removed_peer_alone, reset, reset),
	    cmocka_unit_test_setup_teardown(test_changed_allowed_ips, reset, reset),
	    cmocka_unit_test_setup_teardown(test_changed_psk_keepalive_endpoint, reset, reset),
	    cmocka_unit_test_setup_teardown(test_one_write_for_all, reset, reset),
	    cmocka_unit_test_setup_teardown(test_empty_list_removes_each, reset, reset),
	    cmocka_unit_test_setup_teardown(test_bad_lists_change_nothing, reset, reset),
	    cmocka_unit_test_setup_teardown(test_many_unchanged, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
