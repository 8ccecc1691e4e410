/* multiwan on the real system: ICMP echo through a raw socket bound to the
 * link (its device and its address, so the link's own table routes it),
 * routes and rules through rtnetlink (lib/netlink), the link's address
 * from getifaddrs. */
/* multiwan.h (net/if.h) before linux/icmp.h: the kernel's headers give way
 * to glibc's only in that order */
#include "multiwan.h"
#include "nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/icmp.h>
#include <linux/rtnetlink.h>
#include <netinet/ip.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int real_address(void *arg, const char *ifname, char out[INET_ADDRSTRLEN])
{
	struct ifaddrs *all, *ifa;
	int rc = -ENOENT;
	(void)arg;
	if (getifaddrs(&all))
		return -errno;
	for (ifa = all; ifa && rc; ifa = ifa->ifa_next)
		if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET &&
		    !strcmp(ifa->ifa_name, ifname) &&
		    inet_ntop(AF_INET, &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr, out,
		              INET_ADDRSTRLEN))
			rc = 0;
	freeifaddrs(all);
	return rc;
}

static int real_probe_open(void *arg, const char *ifname, const char *address, char *err,
                           size_t errlen)
{
	struct sockaddr_in local = {.sin_family = AF_INET};
	/* echo replies only: a raw ICMP socket otherwise gets every ICMP packet */
	struct icmp_filter filter = {.data = ~(1u << ICMP_ECHOREPLY)};
	(void)arg;
	if (inet_pton(AF_INET, address, &local.sin_addr) != 1) {
		snprintf(err, errlen, "%s is not an IPv4 address", address);
		return -EINVAL;
	}
	int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open an ICMP socket (root or CAP_NET_RAW needed): %s",
		         strerror(errno));
		return -errno;
	}
	if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)) ||
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) ||
	    bind(fd, (struct sockaddr *)&local, sizeof(local))) {
		int e = errno;
		snprintf(err, errlen, "cannot bind an ICMP socket to %s (%s): %s", ifname, address,
		         strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

static uint16_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static int real_probe_send(void *arg, int fd, const char *check, uint16_t id, uint16_t seq)
{
	struct sockaddr_in to = {.sin_family = AF_INET};
	struct icmphdr echo = {.type = ICMP_ECHO};
	(void)arg;
	if (inet_pton(AF_INET, check, &to.sin_addr) != 1)
		return -EINVAL;
	echo.un.echo.id = htons(id);
	echo.un.echo.sequence = htons(seq);
	echo.checksum = checksum(&echo, sizeof(echo));
	if (sendto(fd, &echo, sizeof(echo), MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to)) < 0)
		return -errno; /* ENETUNREACH while the link is down: a lost probe */
	return 0;
}

static int real_probe_read(void *arg, int fd, uint16_t id, uint16_t *seq)
{
	uint8_t buf[1500];
	ssize_t n;
	(void)arg;
	/* a raw socket reads the IP header too */
	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		size_t ihl = (size_t)(buf[0] & 0x0f) * 4;
		struct icmphdr echo;
		if (ihl < sizeof(struct iphdr) || (size_t)n < ihl + sizeof(echo))
			continue;
		memcpy(&echo, buf + ihl, sizeof(echo));
		if (echo.type != ICMP_ECHOREPLY || ntohs(echo.un.echo.id) != id)
			continue;
		*seq = ntohs(echo.un.echo.sequence);
		return 1;
	}
	return 0;
}

static void real_probe_close(void *arg, int fd)
{
	(void)arg;
	close(fd);
}

static int real_link_routes(void *arg, bool on, unsigned table, unsigned rule_priority,
                            const char *ifname, const char *gateway, const char *address)
{
	(void)arg;
	if (!on) {
		int rc = nl_rule_del(address, table, rule_priority);
		int rc2 = nl_route_del_in(table, "0.0.0.0/0", ifname, gateway);
		return rc && rc != -ENOENT ? rc : rc2 && rc2 != -ESRCH ? rc2 : 0;
	}
	int rc = nl_route_replace_in(table, "0.0.0.0/0", ifname, gateway);
	if (!rc && (rc = nl_rule_add(address, table, rule_priority)) == -EEXIST)
		rc = 0;
	return rc;
}

static int real_default_route(void *arg, const char *ifname, const char *gateway)
{
	(void)arg;
	return nl_route_replace_in(RT_TABLE_MAIN, "0.0.0.0/0", ifname, gateway);
}

const struct mw_system mw_system_real = {
    .address = real_address,
    .probe_open = real_probe_open,
    .probe_send = real_probe_send,
    .probe_read = real_probe_read,
    .probe_close = real_probe_close,
    .link_routes = real_link_routes,
    .default_route = real_default_route,
};
