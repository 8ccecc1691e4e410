/* The wireguard plugin's list of peer changes (plugins/wireguard/peers.c)
 * against a mock back end that keeps every set=1 it would send: several
 * device.changed events are one write, in their order, none lost; an
 * event without a usable key is left out; the list is empty afterwards. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "peers.h"
#include "wg_internal.h"
#include "wg_uapi.h"

static struct {
	int sets;
	char *sent; /* the last set=1 request */
} mock;

static int mock_set(const struct wg_device *dev, char *err, size_t errlen)
{
	char *req;
	size_t len;

	(void)err;
	(void)errlen;
	mock.sets++;
	free(mock.sent);
	assert_int_equal(wg_uapi_format_set(dev, &req, &len), 0);
	mock.sent = strndup(req, len);
	free(req);
	return 0;
}

/* The interface as a takeover reads it: the old key 0x11's peer, where
 * its device is. */
static int mock_get(const char *ifname, struct wg_device **out, char *err, size_t errlen)
{
	(void)ifname;
	(void)err;
	(void)errlen;
	struct wg_device *dev = calloc(1, sizeof(*dev));
	dev->peers = calloc(1, sizeof(*dev->peers));
	dev->n_peers = 1;
	memset(dev->peers[0].public_key, 0x11, WG_KEY_LEN);
	assert_int_equal(wg_endpoint_parse(&dev->peers[0].endpoint, "198.51.100.9:40000"), 0);
	*out = dev;
	return 0;
}

static const struct wg_backend mock_backend = {.name = "mock", .set = mock_set, .get = mock_get};

static int reset(void **state)
{
	(void)state;
	free(mock.sent);
	memset(&mock, 0, sizeof(mock));
	return 0;
}

/* A device.changed payload as preauth publishes it; key i as base64. */
static json_t *event(int key, const char *state, const char *address)
{
	wg_key k;
	char b64[WG_KEY_B64_LEN];

	memset(k, key, sizeof(k));
	wg_key_to_base64(b64, k);
	return json_pack("{s:s, s:s, s:s, s:s?}", "id", "d", "state", state, "public_key", b64,
	                 "address", address);
}

static void add(struct wgp_peers *l, json_t *ev, int expect)
{
	assert_int_equal(wgp_peers_add_change(l, ev), expect);
	json_decref(ev);
}

static void test_events_are_one_write(void **state)
{
	struct wgp_peers l = {0};
	char err[200];

	(void)state;
	add(&l, event(0x11, "active", "10.0.0.2"), 0);
	add(&l, event(0x22, "active", "10.0.0.3/24"), 0); /* a device owns its /32 */
	add(&l, event(0x33, "deleted", NULL), 0);
	add(&l, event(0x44, "pending", "10.0.0.5"), 0);
	add(&l, event(0x11, "active", "10.0.0.9"), 0); /* A again: the later wins */
	add(&l, json_pack("{s:s, s:s}", "id", "x", "state", "active"), -EINVAL);
	add(&l, json_pack("{s:s, s:s, s:s}", "id", "y", "state", "deleted", "public_key", "junk"),
	    -EINVAL);
	assert_int_equal(l.n, 5);
	assert_int_equal(wgp_peers_apply(&l, &mock_backend, "wg0", NULL, NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(mock.sets, 1);
	assert_string_equal(
	    mock.sent,
	    "set=1\n"
	    "public_key=1111111111111111111111111111111111111111111111111111111111111111\n"
	    "persistent_keepalive_interval=0\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.0.0.2/32\n"
	    "public_key=2222222222222222222222222222222222222222222222222222222222222222\n"
	    "persistent_keepalive_interval=0\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.0.0.3/32\n"
	    "public_key=3333333333333333333333333333333333333333333333333333333333333333\n"
	    "remove=true\n"
	    "public_key=4444444444444444444444444444444444444444444444444444444444444444\n"
	    "remove=true\n"
	    "public_key=1111111111111111111111111111111111111111111111111111111111111111\n"
	    "persistent_keepalive_interval=0\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.0.0.9/32\n"
	    "\n");
	/* emptied: nothing more to write */
	assert_int_equal(l.n, 0);
	assert_int_equal(wgp_peers_apply(&l, &mock_backend, "wg0", NULL, NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(mock.sets, 1);
	wgp_peers_free(&l);
}

static int n_taken_over;
static wg_key last_taken_over, last_old_key;

static void taken_over(void *arg, const struct wg_peer *peer, const wg_key old_key)
{
	(void)arg;
	n_taken_over++;
	memcpy(last_taken_over, peer->public_key, WG_KEY_LEN);
	memcpy(last_old_key, old_key, WG_KEY_LEN);
	assert_int_equal(peer->endpoint.sa.sa_family, AF_INET);
}

/* A device's key changed (docs/rotation.md): the new key takes the
 * address (replace_allowed_ips moves it off the old peer, which stays for
 * what it was sending) and the old peer's endpoint, without a keepalive
 * (the device starts the handshake); the plugin's watch is told of the
 * new peer and the old key. An old peer the interface does not have: a
 * plain set, not watched. */
static void test_key_change_takes_over(void **state)
{
	struct wgp_peers l = {0};
	char err[200], old[WG_KEY_B64_LEN], gone[WG_KEY_B64_LEN];
	wg_key k;

	(void)state;
	memset(k, 0x11, sizeof(k));
	wg_key_to_base64(old, k);
	memset(k, 0x55, sizeof(k));
	wg_key_to_base64(gone, k);
	json_t *ev = event(0x22, "active", "10.0.0.2");
	json_object_set_new(ev, "previous_public_key", json_string(old));
	add(&l, ev, 0);
	ev = event(0x66, "active", "10.0.0.3");
	json_object_set_new(ev, "previous_public_key", json_string(gone));
	add(&l, ev, 0);
	/* the same key as before: no takeover */
	ev = event(0x77, "active", "10.0.0.4");
	json_object_set_new(ev, "previous_public_key", json_object_get(ev, "public_key"));
	json_incref(json_object_get(ev, "public_key"));
	add(&l, ev, 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(
	    wgp_peers_apply(&l, &mock_backend, "wg0", taken_over, NULL, err, sizeof(err)), 0);
	assert_int_equal(n_taken_over, 1);
	memset(k, 0x22, sizeof(k));
	assert_memory_equal(last_taken_over, k, WG_KEY_LEN);
	memset(k, 0x11, sizeof(k));
	assert_memory_equal(last_old_key, k, WG_KEY_LEN);
	assert_int_equal(mock.sets, 1);
	assert_string_equal(
	    mock.sent,
	    "set=1\n"
	    "public_key=2222222222222222222222222222222222222222222222222222222222222222\n"
	    "endpoint=198.51.100.9:40000\n"
	    "persistent_keepalive_interval=0\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.0.0.2/32\n"
	    "public_key=6666666666666666666666666666666666666666666666666666666666666666\n"
	    "persistent_keepalive_interval=0\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.0.0.3/32\n"
	    "public_key=7777777777777777777777777777777777777777777777777777777777777777\n"
	    "persistent_keepalive_interval=0\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.0.0.4/32\n"
	    "\n");
	/* a disabled device with a previous key: only its key's removal */
	ev = event(0x22, "disabled", "10.0.0.2");
	json_object_set_new(ev, "previous_public_key", json_string(old));
	add(&l, ev, 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.n_takeovers, 0);
	wgp_peers_free(&l);
}

/* Many events (the list grows, its arrays move): each device's own
 * address goes with its own key, none lost. */
static void test_many_events_none_lost(void **state)
{
	enum { N = 1000 };
	struct wgp_peers l = {0};
	char err[200], line[200], hex[WG_KEY_HEX_LEN];

	(void)state;
	for (int i = 0; i < N; i++) {
		char address[32];
		wg_key k;
		char b64[WG_KEY_B64_LEN];

		memset(k, 0, sizeof(k));
		memcpy(k, &i, sizeof(i));
		wg_key_to_base64(b64, k);
		snprintf(address, sizeof(address), "10.1.%d.%d", i / 256, i % 256);
		json_t *ev = json_pack("{s:s, s:s, s:s}", "state", "active", "public_key", b64,
		                       "address", address);
		add(&l, ev, 0);
	}
	assert_int_equal(wgp_peers_apply(&l, &mock_backend, "wg0", NULL, NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(mock.sets, 1);
	for (int i = 0; i < N; i++) {
		wg_key k;

		memset(k, 0, sizeof(k));
		memcpy(k, &i, sizeof(i));
		wg_key_to_hex(hex, k);
		snprintf(
		    line, sizeof(line),
		    "public_key=%s\npersistent_keepalive_interval=0\nreplace_allowed_ips=true\n"
		    "allowed_ip=10.1.%d.%d/32\n",
		    hex, i / 256, i % 256);
		assert_non_null(strstr(mock.sent, line));
	}
	wgp_peers_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_events_are_one_write, reset, reset),
	    cmocka_unit_test_setup_teardown(test_many_events_none_lost, reset, reset),
	    cmocka_unit_test_setup_teardown(test_key_change_takes_over, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
