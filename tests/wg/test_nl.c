/* lib/netlink against the real kernel, in a private network namespace made
 * with unshare(2) at start: nothing outside it is touched, and it vanishes
 * with the process whatever happens. Needs root (exit 77 otherwise). */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "nl.h"

#define VETH "mgnlv0"

/* Flags and MTU read back through the classic ioctl, independent of nl. */
static int link_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret;

	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", ifname);
	ret = ioctl(fd, req, ifr);
	close(fd);
	return ret;
}

static bool link_is_up(const char *ifname)
{
	struct ifreq ifr;

	assert_int_equal(link_ioctl(ifname, SIOCGIFFLAGS, &ifr), 0);
	return ifr.ifr_flags & IFF_UP;
}

static void test_prefix_parse(void **state)
{
	struct nl_prefix p;

	(void)state;
	assert_int_equal(nl_prefix_parse(&p, "172.19.0.0/16"), 0);
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.len, 16);
	assert_int_equal(nl_prefix_parse(&p, "fd00::1"), 0);
	assert_int_equal(p.len, 128);
	assert_int_equal(nl_prefix_parse(&p, "1.2.3.4/33"), -EINVAL);
	assert_int_equal(nl_prefix_parse(&p, "1.2.3.4/ 3"), -EINVAL);
	assert_int_equal(nl_prefix_parse(&p, "1.2.3.4/"), -EINVAL);
	assert_int_equal(nl_prefix_parse(&p, "/8"), -EINVAL);
	assert_int_equal(nl_prefix_parse(&p, NULL), -EINVAL);
}

static void test_link(void **state)
{
	struct ifreq ifr;

	(void)state;
	assert_int_equal(nl_link_index("lo"), 1);
	assert_int_equal(nl_link_index("mgnlnone"), -ENODEV);
	assert_int_equal(nl_link_set_up("mgnlnone", true), -ENODEV);

	assert_false(link_is_up("lo"));
	assert_int_equal(nl_link_set_up("lo", true), 0);
	assert_true(link_is_up("lo"));

	/* a veth made without a peer name gets one from the kernel */
	assert_int_equal(nl_link_add(VETH, "veth"), 0);
	assert_true(nl_link_index(VETH) > 1);
	assert_int_equal(nl_link_add(VETH, "veth"), -EEXIST);
	assert_int_equal(nl_link_add("mgnlbad", "no-such-kind"), -EOPNOTSUPP);
	assert_int_equal(nl_link_set_mtu(VETH, 1380), 0);
	assert_int_equal(link_ioctl(VETH, SIOCGIFMTU, &ifr), 0);
	assert_int_equal(ifr.ifr_mtu, 1380);
	assert_int_equal(nl_link_set_mtu(VETH, 0), -EINVAL);
	assert_int_equal(nl_link_set_up(VETH, true), 0);
	assert_true(link_is_up(VETH));
	assert_int_equal(nl_link_set_up(VETH, false), 0);
	assert_false(link_is_up(VETH));
	assert_int_equal(nl_link_set_up(VETH, true), 0);
}

static void test_addresses(void **state)
{
	struct ifreq ifr;

	(void)state;
	assert_int_equal(nl_addr_add(VETH, "10.213.1.1/24"), 0);
	assert_int_equal(link_ioctl(VETH, SIOCGIFADDR, &ifr), 0);
	assert_string_equal(inet_ntoa(((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr),
	                    "10.213.1.1");
	assert_int_equal(link_ioctl(VETH, SIOCGIFNETMASK, &ifr), 0);
	assert_string_equal(inet_ntoa(((struct sockaddr_in *)&ifr.ifr_netmask)->sin_addr),
	                    "255.255.255.0");
	assert_int_equal(nl_addr_add(VETH, "10.213.1.1/24"), -EEXIST);
	assert_int_equal(nl_addr_add(VETH, "fd00:213::1/64"), 0);
	assert_int_equal(nl_addr_add("mgnlnone", "10.213.9.1/24"), -ENODEV);
	assert_int_equal(nl_addr_add(VETH, "10.213.1.300/24"), -EINVAL);

	/* the prefix route that comes with the address proves the length */
	{
		struct nl_route_match m;

		assert_int_equal(nl_route_lookup("10.213.1.128/25", &m), 0);
		assert_string_equal(m.ifname, VETH);
		assert_int_equal(m.prefix_len, 24);
		assert_int_equal(nl_route_lookup("fd00:213::/64", &m), 0);
		assert_string_equal(m.ifname, VETH);
	}

	assert_int_equal(nl_addr_add("lo", "10.213.2.1/32"), 0);
	assert_int_equal(nl_addr_del("lo", "10.213.2.1/32"), 0);
	assert_int_equal(nl_addr_del("lo", "10.213.2.1/32"), -EADDRNOTAVAIL);
}

static void test_routes(void **state)
{
	struct nl_route_match m;
	char gw[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(nl_route_lookup("172.19.0.0/16", &m), -ENETUNREACH);
	assert_int_equal(nl_route_add("172.19.0.0/16", VETH, "10.213.1.2"), 0);
	assert_int_equal(nl_route_add("172.19.0.0/16", VETH, "10.213.1.2"), -EEXIST);
	assert_int_equal(nl_route_add("172.19.5.0/24", "lo", NULL), 0);
	assert_int_equal(nl_route_add("0.0.0.0/0", VETH, "10.213.1.3"), 0);

	/* "which interface is behind 172.19.0.0/16" */
	assert_int_equal(nl_route_lookup("172.19.0.0/16", &m), 0);
	assert_string_equal(m.ifname, VETH);
	assert_int_equal(m.ifindex, nl_link_index(VETH));
	assert_int_equal(m.prefix_len, 16);
	assert_true(m.has_gateway);
	inet_ntop(AF_INET, &m.gateway.addr.v4, gw, sizeof(gw));
	assert_string_equal(gw, "10.213.1.2");

	/* the more specific route wins for what it covers, not for more */
	assert_int_equal(nl_route_lookup("172.19.5.7/32", &m), 0);
	assert_string_equal(m.ifname, "lo");
	assert_false(m.has_gateway);
	assert_int_equal(nl_route_lookup("172.19.4.0/23", &m), 0);
	assert_string_equal(m.ifname, VETH);
	assert_int_equal(m.prefix_len, 16);

	/* outside everything else: the default route */
	assert_int_equal(nl_route_lookup("192.0.2.0/24", &m), 0);
	assert_int_equal(m.prefix_len, 0);
	inet_ntop(AF_INET, &m.gateway.addr.v4, gw, sizeof(gw));
	assert_string_equal(gw, "10.213.1.3");

	assert_int_equal(nl_route_del("172.19.5.0/24", "lo", NULL), 0);
	assert_int_equal(nl_route_del("172.19.5.0/24", "lo", NULL), -ESRCH);
	assert_int_equal(nl_route_lookup("172.19.5.7/32", &m), 0);
	assert_string_equal(m.ifname, VETH);
	assert_int_equal(nl_route_del("172.19.0.0/16", VETH, "10.213.1.2"), 0);
	assert_int_equal(nl_route_del("0.0.0.0/0", VETH, NULL), 0);
	assert_int_equal(nl_route_lookup("172.19.0.0/16", &m), -ENETUNREACH);

	/* IPv6, and a gateway of the wrong family */
	assert_int_equal(nl_route_add("fd00:214::/48", VETH, NULL), 0);
	assert_int_equal(nl_route_lookup("fd00:214:0:1::/64", &m), 0);
	assert_string_equal(m.ifname, VETH);
	assert_int_equal(m.prefix_len, 48);
	assert_int_equal(nl_route_add("fd00:215::/48", VETH, "10.213.1.2"), -EINVAL);
	assert_int_equal(nl_route_del("fd00:214::/48", VETH, NULL), 0);
}

static void test_link_delete(void **state)
{
	(void)state;
	assert_int_equal(nl_link_del(VETH), 0);
	assert_int_equal(nl_link_index(VETH), -ENODEV);
	assert_int_equal(nl_link_del(VETH), -ENODEV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefix_parse), cmocka_unit_test(test_link),
	    cmocka_unit_test(test_addresses),    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_link_delete),
	};

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root for a network namespace\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		perror("unshare(CLONE_NEWNET)");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
