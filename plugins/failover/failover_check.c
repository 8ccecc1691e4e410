/* meshgate-failover-check HEARTBEAT MAX_AGE_MS [INTERFACE]: the track
 * script keepalived runs every second. Exits 0 when this node may be the
 * active one: meshgated renewed its heartbeat file within MAX_AGE_MS (the
 * failover plugin renews it after each answer of the core to core.ping, so
 * a hung core or a stopped plugin goes stale), and the devices' WireGuard
 * interface, when named, exists and is up. Else 1, why on stderr
 * (keepalived logs it). Small and cheap: a stat and an ioctl. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long ms_of(const struct timespec *t)
{
	return (long long)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

static int heartbeat_fresh(const char *path, long long max_age_ms)
{
	struct stat st;
	struct timespec now;
	if (stat(path, &st)) {
		fprintf(stderr, "meshgated heartbeat %s: %s\n", path, strerror(errno));
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	long long age = ms_of(&now) - ms_of(&st.st_mtim);
	if (age > max_age_ms) {
		fprintf(stderr, "meshgated heartbeat is %lld ms old (limit %lld)\n", age,
		        max_age_ms);
		return 0;
	}
	return 1;
}

static int interface_up(const char *name)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || strlen(name) >= sizeof(ifr.ifr_name)) {
		fprintf(stderr, "cannot check interface %s\n", name);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	memcpy(ifr.ifr_name, name, strlen(name));
	int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	close(fd);
	if (rc) {
		fprintf(stderr, "WireGuard interface %s: %s\n", name, strerror(errno));
		return 0;
	}
	if (!(ifr.ifr_flags & IFF_UP)) {
		fprintf(stderr, "WireGuard interface %s is down\n", name);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	char *end;
	if (argc < 3 || argc > 4) {
		fprintf(stderr,
		        "usage: meshgate-failover-check HEARTBEAT MAX_AGE_MS [INTERFACE]\n");
		return 2;
	}
	long long max_age = strtoll(argv[2], &end, 10);
	if (*end || max_age <= 0) {
		fprintf(stderr, "meshgate-failover-check: '%s' is not a number of ms\n", argv[2]);
		return 2;
	}
	if (!heartbeat_fresh(argv[1], max_age))
		return 1;
	if (argc == 4 && !interface_up(argv[3]))
		return 1;
	return 0;
}
