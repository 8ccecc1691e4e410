/*
 * The kernel back end without a kernel module: builds the WG_CMD_SET_DEVICE
 * message train for a big device, checks each message's size and where the
 * flags went, then reads the train back with the back end's own dump
 * parser (which coalesces split peers) and compares with what went in.
 *
 * The file under test is included so its static builders can be reached.
 */
#include "../../lib/wg/wg_netlink.c"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#define N_PEERS 300
#define BIG_IPS 2000 /* one peer's IPs span several messages */

struct flags_seen {
	int device_flags, replace_allowed;
};

static int count_peer_flags(const struct nlattr *attr, void *data)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, attr)
	{
		if (mnl_attr_get_type(a) == WGPEER_A_FLAGS &&
		    (mnl_attr_get_u32(a) & WGPEER_F_REPLACE_ALLOWEDIPS))
			((struct flags_seen *)data)->replace_allowed++;
	}
	return MNL_CB_OK;
}

static int count_flags(const struct nlattr *attr, void *data)
{
	struct flags_seen *seen = data;

	if (mnl_attr_get_type(attr) == WGDEVICE_A_FLAGS)
		seen->device_flags++;
	if (mnl_attr_get_type(attr) == WGDEVICE_A_PEERS)
		return mnl_attr_parse_nested(attr, count_peer_flags, data);
	return MNL_CB_OK;
}

static struct wg_device *make_device(void)
{
	struct wg_device *dev = calloc(1, sizeof(*dev));
	char text[64];

	assert_non_null(dev);
	strcpy(dev->name, "wgtest0");
	dev->flags =
	    WG_DEVICE_REPLACE_PEERS | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_PRIVATE_KEY;
	dev->listen_port = 51820;
	assert_int_equal(wg_key_generate_private(dev->private_key), 0);
	for (int i = 0; i < N_PEERS; i++) {
		struct wg_peer *p = wg_device_append_peer(dev);
		int n_ips = i == 17 ? BIG_IPS : i % 7;

		assert_non_null(p);
		assert_int_equal(wg_key_generate_preshared(p->public_key), 0);
		p->flags = WG_PEER_REPLACE_ALLOWED;
		if (i % 3 == 0) {
			p->flags |= WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_KEEPALIVE;
			assert_int_equal(wg_key_generate_preshared(p->preshared_key), 0);
			p->persistent_keepalive = 25;
		}
		snprintf(text, sizeof(text), i % 2 ? "10.213.%d.1:%d" : "[fd00::%x]:%d", i % 256,
		         1000 + i);
		assert_int_equal(wg_endpoint_parse(&p->endpoint, text), 0);
		for (int j = 0; j < n_ips; j++) {
			struct wg_allowed_ip ip;

			if (j % 2)
				snprintf(text, sizeof(text), "fd00:%x::%x/128", i, j);
			else
				snprintf(text, sizeof(text), "10.%d.%d.%d/32", i % 256, j / 256,
				         j % 256);
			assert_int_equal(wg_allowed_ip_parse(&ip, text), 0);
			assert_int_equal(wg_peer_append_allowed_ip(p, &ip), 0);
		}
	}
	return dev;
}

static void assert_same_peer(const struct wg_peer *want, const struct wg_peer *got)
{
	assert_memory_equal(want->public_key, got->public_key, WG_KEY_LEN);
	assert_int_equal(want->flags & WG_PEER_HAS_PRESHARED_KEY,
	                 got->flags & WG_PEER_HAS_PRESHARED_KEY);
	if (want->flags & WG_PEER_HAS_PRESHARED_KEY)
		assert_memory_equal(want->preshared_key, got->preshared_key, WG_KEY_LEN);
	assert_int_equal(want->persistent_keepalive, got->persistent_keepalive);
	assert_int_equal(want->endpoint.sa.sa_family, got->endpoint.sa.sa_family);
	assert_memory_equal(&want->endpoint, &got->endpoint,
	                    want->endpoint.sa.sa_family == AF_INET ? sizeof(struct sockaddr_in)
	                                                           : sizeof(struct sockaddr_in6));
	assert_int_equal(want->n_allowed_ips, got->n_allowed_ips);
	for (size_t j = 0; j < want->n_allowed_ips; j++) {
		const struct wg_allowed_ip *a = &want->allowed_ips[j], *b = &got->allowed_ips[j];

		assert_int_equal(a->family, b->family);
		assert_int_equal(a->cidr, b->cidr);
		assert_memory_equal(&a->ip6, &b->ip6, a->family == AF_INET ? 4 : 16);
	}
}

static void test_fragments_round_trip(void **state)
{
	struct wg_device *dev = make_device();
	struct read_state st = {.dev = calloc(1, sizeof(struct wg_device))};
	struct flags_seen seen = {0};
	struct genl g = {0};
	struct cursor c = {0};
	char *buf = malloc(MSG_SIZE);
	int messages = 0;

	(void)state;
	assert_non_null(buf);
	assert_non_null(st.dev);
	for (bool first = true;; first = false) {
		struct nlmsghdr *nlh = genl_msg(&g, buf, 0x42, WG_CMD_SET_DEVICE, 0);

		assert_true(build_fragment(nlh, dev, &c, first));
		assert_true(nlh->nlmsg_len <= MSG_SIZE);
		messages++;
		assert_int_equal(mnl_attr_parse(nlh, sizeof(struct genlmsghdr), count_flags, &seen),
		                 MNL_CB_OK);
		/* device settings and REPLACE_PEERS travel in the first message only */
		assert_int_equal(seen.device_flags, 1);
		assert_int_equal(
		    mnl_attr_parse(nlh, sizeof(struct genlmsghdr), device_attr_cb, &st), MNL_CB_OK);
		if (first)
			assert_int_equal(st.dev->listen_port, 51820);
		if (c.peer == dev->n_peers)
			break;
	}
	/* ~11 bytes of payload an IP: a 2000-IP peer alone needs several */
	assert_true(messages > 5);
	/* each peer's allowed IPs are replaced once, not once a fragment */
	assert_int_equal(seen.replace_allowed, N_PEERS);
	assert_int_equal(st.dev->n_peers, N_PEERS);
	for (size_t i = 0; i < dev->n_peers; i++)
		assert_same_peer(&dev->peers[i], &st.dev->peers[i]);
	wg_device_free(st.dev);
	wg_device_free(dev);
	free(buf);
}

static void test_empty_and_removal(void **state)
{
	struct wg_device dev = {.name = "wgtest0"};
	struct wg_peer peer = {.flags = WG_PEER_REMOVE};
	struct genl g = {0};
	struct cursor c = {0};
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = genl_msg(&g, buf, 0x42, WG_CMD_SET_DEVICE, 0);
	struct nlattr *a;
	int removes = 0;

	(void)state;
	/* no peers: one message, just the name */
	assert_true(build_fragment(nlh, &dev, &c, true));
	assert_int_equal(c.peer, 0);

	dev.peers = &peer;
	dev.n_peers = 1;
	nlh = genl_msg(&g, buf, 0x42, WG_CMD_SET_DEVICE, 0);
	assert_true(build_fragment(nlh, &dev, &c, true));
	assert_int_equal(c.peer, 1);
	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr))
	{
		const struct nlattr *p, *f;

		if (mnl_attr_get_type(a) != WGDEVICE_A_PEERS)
			continue;
		mnl_attr_for_each_nested(p, a) mnl_attr_for_each_nested(f, p)
		{
			if (mnl_attr_get_type(f) == WGPEER_A_FLAGS &&
			    mnl_attr_get_u32(f) == WGPEER_F_REMOVE_ME)
				removes++;
		}
	}
	assert_int_equal(removes, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fragments_round_trip),
	    cmocka_unit_test(test_empty_and_removal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
