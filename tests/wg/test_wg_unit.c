/* Unit tests of lib/wg that need no daemon: keys, text forms, the UAPI
 * request writer and answer parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wg.h"
#include "wg_uapi.h"

/* Made with `wg genkey | tee priv | wg pubkey`. */
static const char WG_PRIV[] = "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn8=";
static const char WG_PUB[] = "hpMEcCWMNUCmtlM+L+6SLjf95fvEv0qpbHGpFIr3vnA=";
/* RFC 7748 section 6.1, Alice. */
static const char RFC_PRIV[] = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
static const char RFC_PUB[] = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

static void test_public_key_vectors(void **state)
{
	wg_key priv, pub;
	char b64[WG_KEY_B64_LEN], hex[WG_KEY_HEX_LEN];

	(void)state;
	assert_int_equal(wg_key_from_base64(priv, WG_PRIV), 0);
	assert_int_equal(wg_key_public_from_private(pub, priv), 0);
	wg_key_to_base64(b64, pub);
	assert_string_equal(b64, WG_PUB);

	assert_int_equal(wg_key_from_hex(priv, RFC_PRIV), 0);
	assert_int_equal(wg_key_public_from_private(pub, priv), 0);
	wg_key_to_hex(hex, pub);
	assert_string_equal(hex, RFC_PUB);
}

static void test_generate_is_clamped_and_random(void **state)
{
	wg_key a, b, pub;

	(void)state;
	assert_int_equal(wg_key_generate_private(a), 0);
	assert_int_equal(wg_key_generate_private(b), 0);
	assert_false(wg_key_equal(a, b));
	assert_int_equal(a[0] & 7, 0);
	assert_int_equal(a[31] & 0xc0, 0x40);
	assert_int_equal(wg_key_public_from_private(pub, a), 0);
	assert_false(wg_key_is_zero(pub));
}

static void test_base64_round_trip(void **state)
{
	char b64[WG_KEY_B64_LEN];
	wg_key key, back;

	(void)state;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(wg_key_generate_preshared(key), 0);
		wg_key_to_base64(b64, key);
		assert_int_equal(strlen(b64), 44);
		assert_int_equal(b64[43], '=');
		assert_int_equal(wg_key_from_base64(back, b64), 0);
		assert_true(wg_key_equal(key, back));
	}
}

static void test_base64_rejects_non_keys(void **state)
{
	static const char *bad[] = {
	    "",
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn8",      /* no padding */
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn8==",    /* 45 chars */
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn8=\n",   /* newline */
	    " CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn8=",    /* space */
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn9=",     /* stray bits */
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr-NsjIXhn8=",     /* URL alphabet */
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXh===",     /* 31 bytes */
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn8A",     /* 33 bytes */
	    "CMifJyNwq9jzVdm0brIRUU1EQGxvBTwcsr+NsjIXhn8=CMif", /* trailing */
	    "============================================",
	};
	wg_key key;

	(void)state;
	memset(key, 0xaa, sizeof(key));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(wg_key_from_base64(key, bad[i]), -EINVAL);
	}
	assert_int_equal(wg_key_from_base64(key, NULL), -EINVAL);
	/* a refused key leaves the output alone */
	assert_int_equal(key[0], 0xaa);
}

static void test_hex(void **state)
{
	wg_key key;
	char hex[WG_KEY_HEX_LEN];

	(void)state;
	assert_int_equal(wg_key_from_hex(key, RFC_PUB), 0);
	wg_key_to_hex(hex, key);
	assert_string_equal(hex, RFC_PUB);
	assert_int_equal(wg_key_from_hex(key,
	                                 "8520F0098930A754748B7DDCB43EF75A0DBF3A0D26381AF4EBA4A98"
	                                 "EAA9B4E6A"),
	                 0);
	assert_int_equal(wg_key_from_hex(key, "8520"), -EINVAL);
	assert_int_equal(wg_key_from_hex(key,
	                                 "g520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98"
	                                 "eaa9b4e6a"),
	                 -EINVAL);
}

static void test_allowed_ip_and_endpoint_text(void **state)
{
	struct wg_allowed_ip ip;
	union wg_endpoint ep;

	(void)state;
	assert_int_equal(wg_allowed_ip_parse(&ip, "10.214.0.0/16"), 0);
	assert_int_equal(ip.family, AF_INET);
	assert_int_equal(ip.cidr, 16);
	assert_int_equal(wg_allowed_ip_parse(&ip, "fd00::1"), 0);
	assert_int_equal(ip.family, AF_INET6);
	assert_int_equal(ip.cidr, 128);
	assert_int_equal(wg_allowed_ip_parse(&ip, "10.0.0.1/33"), -EINVAL);
	assert_int_equal(wg_allowed_ip_parse(&ip, "10.0.0.1/"), -EINVAL);
	assert_int_equal(wg_allowed_ip_parse(&ip, "10.0.0.1/+8"), -EINVAL);
	assert_int_equal(wg_allowed_ip_parse(&ip, "fd00::/129"), -EINVAL);
	assert_int_equal(wg_allowed_ip_parse(&ip, "host/8"), -EINVAL);

	assert_int_equal(wg_endpoint_parse(&ep, "10.213.0.2:51820"), 0);
	assert_int_equal(ep.sa.sa_family, AF_INET);
	assert_int_equal(ntohs(ep.in4.sin_port), 51820);
	assert_int_equal(wg_endpoint_parse(&ep, "[fd00::2]:1"), 0);
	assert_int_equal(ep.sa.sa_family, AF_INET6);
	assert_int_equal(wg_endpoint_parse(&ep, "[fe80::1%7]:9"), 0);
	assert_int_equal(ep.in6.sin6_scope_id, 7);
	assert_int_equal(wg_endpoint_parse(&ep, "10.213.0.2"), -EINVAL);
	assert_int_equal(wg_endpoint_parse(&ep, "10.213.0.2:65536"), -EINVAL);
	assert_int_equal(wg_endpoint_parse(&ep, "fd00::2:51820"), -EINVAL);
	assert_int_equal(wg_endpoint_parse(&ep, "vpn.example.com:51820"), -EINVAL);
	assert_int_equal(wg_endpoint_parse(&ep, "[fd00::2]51820"), -EINVAL);
}

static void test_format_set(void **state)
{
	struct wg_allowed_ip ips[2];
	struct wg_peer peers[2];
	struct wg_device dev;
	char *buf;
	size_t len;
	static const char expect[] =
	    "set=1\n"
	    "private_key=77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\n"
	    "listen_port=51820\n"
	    "replace_peers=true\n"
	    "public_key=8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a\n"
	    "endpoint=[fd00::2]:51821\n"
	    "persistent_keepalive_interval=25\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.214.0.2/32\n"
	    "allowed_ip=fd00:214::2/128\n"
	    "public_key=77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\n"
	    "remove=true\n"
	    "\n";

	(void)state;
	memset(&dev, 0, sizeof(dev));
	memset(peers, 0, sizeof(peers));
	strcpy(dev.name, "wg0");
	dev.flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS;
	assert_int_equal(wg_key_from_hex(dev.private_key, RFC_PRIV), 0);
	dev.listen_port = 51820;
	assert_int_equal(wg_key_from_hex(peers[0].public_key, RFC_PUB), 0);
	assert_int_equal(wg_endpoint_parse(&peers[0].endpoint, "[fd00::2]:51821"), 0);
	peers[0].flags = WG_PEER_HAS_KEEPALIVE | WG_PEER_REPLACE_ALLOWED;
	peers[0].persistent_keepalive = 25;
	assert_int_equal(wg_allowed_ip_parse(&ips[0], "10.214.0.2/32"), 0);
	assert_int_equal(wg_allowed_ip_parse(&ips[1], "fd00:214::2/128"), 0);
	peers[0].allowed_ips = ips;
	peers[0].n_allowed_ips = 2;
	/* a removal writes nothing but the key, whatever else is set */
	assert_int_equal(wg_key_from_hex(peers[1].public_key, RFC_PRIV), 0);
	peers[1].flags = WG_PEER_REMOVE | WG_PEER_HAS_KEEPALIVE;
	peers[1].allowed_ips = ips;
	peers[1].n_allowed_ips = 2;
	dev.peers = peers;
	dev.n_peers = 2;

	assert_int_equal(wg_uapi_format_set(&dev, &buf, &len), 0);
	assert_int_equal(len, strlen(expect));
	assert_memory_equal(buf, expect, len);
	free(buf);
}

/* What wireguard-go 0.0.20220316 answers, with one unknown key added. */
static const char GOOD_ANSWER[] =
    "private_key=a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a060\n"
    "listen_port=51999\n"
    "fwmark=7\n"
    "future_device_key=whatever\n"
    "public_key=1111111111111111111111111111111111111111111111111111111111111111\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\n"
    "endpoint=10.213.0.2:51820\n"
    "last_handshake_time_sec=1700000000\n"
    "last_handshake_time_nsec=123\n"
    "tx_bytes=92\n"
    "rx_bytes=1024\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=10.214.0.2/32\n"
    "allowed_ip=fd00::2/128\n"
    "public_key=2222222222222222222222222222222222222222222222222222222222222222\n"
    "preshared_key=3333333333333333333333333333333333333333333333333333333333333333\n"
    "listen_port=1\n"
    "errno=0\n"
    "\n";

static void test_parse_get(void **state)
{
	struct wg_device *dev;
	const struct wg_peer *p;
	wg_key k;
	char err[128];

	(void)state;
	assert_int_equal(
	    wg_uapi_parse_get(GOOD_ANSWER, strlen(GOOD_ANSWER), &dev, err, sizeof(err)), 0);
	assert_int_equal(dev->listen_port, 51999);
	assert_int_equal(dev->fwmark, 7);
	assert_true(dev->flags & WG_DEVICE_HAS_PUBLIC_KEY);
	assert_int_equal(dev->n_peers, 2);
	p = &dev->peers[0];
	memset(k, 0x11, sizeof(k));
	assert_true(wg_key_equal(p->public_key, k));
	assert_false(p->flags & WG_PEER_HAS_PRESHARED_KEY);
	assert_int_equal(p->endpoint.sa.sa_family, AF_INET);
	assert_int_equal(ntohs(p->endpoint.in4.sin_port), 51820);
	assert_int_equal(p->last_handshake.tv_sec, 1700000000);
	assert_int_equal(p->last_handshake.tv_nsec, 123);
	assert_int_equal(p->tx_bytes, 92);
	assert_int_equal(p->rx_bytes, 1024);
	assert_int_equal(p->persistent_keepalive, 25);
	assert_int_equal(p->n_allowed_ips, 2);
	assert_int_equal(p->allowed_ips[1].family, AF_INET6);
	p = &dev->peers[1];
	assert_true(p->flags & WG_PEER_HAS_PRESHARED_KEY);
	assert_int_equal(p->n_allowed_ips, 0);
	/* a device key after the first peer belongs to nobody: skipped */
	assert_int_equal(dev->listen_port, 51999);
	wg_device_free(dev);
}

/* Replaces the first occurrence of what in GOOD_ANSWER and parses that. */
static int parse_edited(const char *what, const char *with, char *err, size_t errlen)
{
	char buf[4096];
	const char *at = strstr(GOOD_ANSWER, what);
	struct wg_device *dev = (struct wg_device *)1;
	int ret;

	assert_non_null(at);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - GOOD_ANSWER), GOOD_ANSWER, with,
	         at + strlen(what));
	ret = wg_uapi_parse_get(buf, strlen(buf), &dev, err, errlen);
	if (ret == 0)
		wg_device_free(dev);
	else
		assert_null(dev);
	return ret;
}

static void test_parse_get_rejects(void **state)
{
	char err[128], longline[2100];

	(void)state;
	assert_int_equal(parse_edited("=1111", "=x111", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "line 5"));
	assert_int_equal(parse_edited("listen_port=51999", "listen_port=70000", err, sizeof(err)),
	                 -EPROTO);
	assert_int_equal(parse_edited("listen_port=51999", "listen_port=-1", err, sizeof(err)),
	                 -EPROTO);
	assert_int_equal(
	    parse_edited("rx_bytes=1024", "rx_bytes=99999999999999999999", err, sizeof(err)),
	    -EPROTO);
	assert_int_equal(parse_edited("/32", "/33", err, sizeof(err)), -EPROTO);
	assert_int_equal(
	    parse_edited("endpoint=10.213.0.2:51820", "endpoint=10.213.0.2", err, sizeof(err)),
	    -EPROTO);
	assert_int_equal(parse_edited("fwmark=7\n", "fwmark7\n", err, sizeof(err)), -EPROTO);
	assert_int_equal(parse_edited("last_handshake_time_nsec=123",
	                              "last_handshake_time_nsec=1000000000", err, sizeof(err)),
	                 -EPROTO);
	assert_int_equal(parse_edited("errno=0\n", "", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "errno"));
	assert_int_equal(parse_edited("errno=0\n\n", "errno=0\n", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(parse_edited("errno=0\n\n", "errno=0", err, sizeof(err)), -EPROTO);
	assert_int_equal(parse_edited("errno=0", "errno=-22", err, sizeof(err)), -EINVAL);
	assert_int_equal(parse_edited("errno=0", "errno=22", err, sizeof(err)), -EINVAL);
	assert_int_equal(parse_edited("errno=0", "errno=abc", err, sizeof(err)), -EPROTO);

	memset(longline, 'a', sizeof(longline));
	memcpy(longline, "future_key=", 11);
	longline[sizeof(longline) - 1] = '\0';
	assert_int_equal(parse_edited("future_device_key=whatever", longline, err, sizeof(err)),
	                 -EPROTO);
	assert_non_null(strstr(err, "too long"));

	/* a NUL inside the answer */
	{
		char buf[sizeof(GOOD_ANSWER)];
		struct wg_device *dev;

		memcpy(buf, GOOD_ANSWER, sizeof(buf));
		buf[20] = '\0';
		assert_int_equal(wg_uapi_parse_get(buf, sizeof(buf) - 1, &dev, err, sizeof(err)),
		                 -EPROTO);
	}
}

static void test_parse_get_edges(void **state)
{
	static const char zero_key[] = "private_key=0000000000000000000000000000000000000000000000"
	                               "000000000000000000\nerrno=0\n\n";
	struct wg_device *dev;
	char err[128];

	(void)state;
	/* an empty device */
	assert_int_equal(wg_uapi_parse_get("errno=0\n\n", 9, &dev, err, sizeof(err)), 0);
	assert_int_equal(dev->n_peers, 0);
	assert_int_equal(dev->flags, 0);
	wg_device_free(dev);
	/* nothing at all, a lone empty line, and NULL errors */
	assert_int_equal(wg_uapi_parse_get("", 0, &dev, NULL, 0), -EPROTO);
	assert_int_equal(wg_uapi_parse_get("\n", 1, &dev, NULL, 0), -EPROTO);
	/* a zero private key means none: no public key derived */
	assert_int_equal(wg_uapi_parse_get(zero_key, strlen(zero_key), &dev, err, sizeof(err)), 0);
	assert_false(dev->flags & WG_DEVICE_HAS_PUBLIC_KEY);
	wg_device_free(dev);
	/* what follows the empty line is not read */
	assert_int_equal(wg_uapi_parse_get("errno=0\n\ngarbage", 16, &dev, err, sizeof(err)), 0);
	wg_device_free(dev);
}

static void test_parse_errno(void **state)
{
	(void)state;
	assert_int_equal(wg_uapi_parse_errno("errno=0\n\n", 9), 0);
	assert_int_equal(wg_uapi_parse_errno("errno=-22\n\n", 11), -EINVAL);
	assert_int_equal(wg_uapi_parse_errno("errno=98\n\n", 10), -EADDRINUSE);
	assert_int_equal(wg_uapi_parse_errno("errno=\n\n", 8), -EPROTO);
	assert_int_equal(wg_uapi_parse_errno("error=0\n\n", 9), -EPROTO);
	assert_int_equal(wg_uapi_parse_errno("errno=0", 7), -EPROTO);
}

static void test_backend_select(void **state)
{
	const struct wg_backend *be = NULL;
	char err[160] = "";
	int ret;

	(void)state;
	assert_int_equal(wg_backend_select("bogus", &be, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bogus"));
	assert_int_equal(wg_backend_select("userspace", &be, err, sizeof(err)), 0);
	assert_string_equal(wg_backend_name(be), "userspace");
	assert_int_equal(wg_backend_select("auto", &be, err, sizeof(err)), 0);
	/* auto picks the kernel exactly when the kernel backend can be had */
	ret = wg_backend_select("kernel", &be, err, sizeof(err));
	if (ret == 0) {
		assert_string_equal(wg_backend_name(be), "kernel");
	} else {
		assert_non_null(strstr(err, "kernel"));
		assert_int_equal(wg_backend_select("auto", &be, err, sizeof(err)), 0);
		assert_string_equal(wg_backend_name(be), "userspace");
	}
}

static void test_no_daemon(void **state)
{
	const struct wg_backend *be;
	struct wg_device *dev = (struct wg_device *)1;
	char err[200] = "";

	(void)state;
	assert_int_equal(wg_backend_select("userspace", &be, NULL, 0), 0);
	assert_int_equal(wg_device_get(be, "mgwgnone0", &dev, err, sizeof(err)), -ENOENT);
	assert_null(dev);
	assert_non_null(strstr(err, "mgwgnone0"));
	assert_int_equal(wg_device_get(be, "a/b", &dev, err, sizeof(err)), -EINVAL);
	assert_int_equal(wg_device_get(be, "name-longer-than-15", &dev, err, sizeof(err)), -EINVAL);
}

/* Bad peers are refused before any daemon is asked: -EINVAL, not the
 * -ENOENT that the missing daemon would give. */
static void test_write_validation(void **state)
{
	const struct wg_backend *be;
	struct wg_allowed_ip ip;
	struct wg_peer peer = {0};
	char err[200] = "";

	(void)state;
	assert_int_equal(wg_backend_select("userspace", &be, NULL, 0), 0);
	assert_int_equal(wg_allowed_ip_parse(&ip, "10.214.0.2/32"), 0);
	peer.allowed_ips = &ip;
	peer.n_allowed_ips = 1;
	assert_int_equal(wg_peers_upsert(be, "mgwgnone0", &peer, 1, err, sizeof(err)), -ENOENT);
	ip.cidr = 33;
	assert_int_equal(wg_peers_upsert(be, "mgwgnone0", &peer, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/33"));
	ip.family = AF_INET6;
	ip.cidr = 129;
	assert_int_equal(wg_peers_reconcile(be, "mgwgnone0", &peer, 1, NULL, err, sizeof(err)),
	                 -EINVAL);
	ip.family = AF_UNIX;
	ip.cidr = 8;
	assert_int_equal(wg_peers_reconcile(be, "mgwgnone0", &peer, 1, NULL, err, sizeof(err)),
	                 -EINVAL);
	/* a removal carries no allowed IPs: nothing to refuse */
	assert_int_equal(wg_peers_remove(be, "mgwgnone0", &peer.public_key, 1, err, sizeof(err)),
	                 -ENOENT);
	assert_int_equal(wg_device_configure(be, "mgwgnone0", NULL, 70000, -1, err, sizeof(err)),
	                 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_public_key_vectors),
	    cmocka_unit_test(test_generate_is_clamped_and_random),
	    cmocka_unit_test(test_base64_round_trip),
	    cmocka_unit_test(test_base64_rejects_non_keys),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_allowed_ip_and_endpoint_text),
	    cmocka_unit_test(test_format_set),
	    cmocka_unit_test(test_parse_get),
	    cmocka_unit_test(test_parse_get_rejects),
	    cmocka_unit_test(test_parse_get_edges),
	    cmocka_unit_test(test_parse_errno),
	    cmocka_unit_test(test_backend_select),
	    cmocka_unit_test(test_no_daemon),
	    cmocka_unit_test(test_write_validation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
