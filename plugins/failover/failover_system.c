/* keepalived as the system runs it, through lib/spawn: started on the
 * plugin's thread with PR_SET_PDEATHSIG, so that it goes when meshgated
 * goes (a crash included), never looked for by name. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "failover.h"
#include "spawn.h"

/* How long keepalived has to send its priority-0 advert and drop its
 * VIPs before SIGKILL. */
#define FO_STOP_GRACE_MS 3000

/* -n: stays our child; -P: VRRP only; -l -G: logs on our stderr, not
 * syslog; pid files of its own, so that several run on one host (one a
 * namespace) without taking each other for a running instance. */
static int sys_start(void *arg, const char *program, const char *conf, const char *dir, pid_t *pid,
                     char *err, size_t errlen)
{
	char pidfile[4096], vrrp_pid[4096], checkers_pid[4096], bfd_pid[4096];
	(void)arg;
	snprintf(pidfile, sizeof(pidfile), "%s/keepalived.pid", dir);
	snprintf(vrrp_pid, sizeof(vrrp_pid), "%s/vrrp.pid", dir);
	snprintf(checkers_pid, sizeof(checkers_pid), "%s/checkers.pid", dir);
	snprintf(bfd_pid, sizeof(bfd_pid), "%s/bfd.pid", dir);
	char *argv[] = {
	    (char *)program, "-f", (char *)conf, "-n", "-P",         "-l", "-G",    "-D", "-p",
	    pidfile,         "-r", vrrp_pid,     "-c", checkers_pid, "-b", bfd_pid, NULL};
	struct mg_spawn s = {.argv = argv, .die_with_parent = true};
	return mg_spawn_start(&s, pid, err, errlen);
}

static int sys_reload(void *arg, pid_t pid)
{
	(void)arg;
	return kill(pid, SIGHUP) ? -errno : 0;
}

static int sys_exited(void *arg, pid_t pid)
{
	(void)arg;
	int rc = mg_spawn_exited(pid, NULL);
	return rc == 0 ? 0 : 1;
}

static void sys_stop(void *arg, pid_t pid)
{
	(void)arg;
	mg_spawn_stop(pid, FO_STOP_GRACE_MS, NULL);
}

static int sys_find_address(void *arg, const char *address, char ifname[IF_NAMESIZE], unsigned *len)
{
	struct ifaddrs *all, *i;
	struct in_addr want;
	int rc = -ENOENT;
	(void)arg;
	if (inet_pton(AF_INET, address, &want) != 1)
		return -EINVAL;
	if (getifaddrs(&all))
		return -errno;
	for (i = all; i && rc; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !i->ifa_netmask ||
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr != want.s_addr)
			continue;
		snprintf(ifname, IF_NAMESIZE, "%s", i->ifa_name);
		*len = (unsigned)__builtin_popcount(
		    ((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
		rc = 0;
	}
	freeifaddrs(all);
	return rc;
}

const struct fo_system fo_system_real = {
    .start = sys_start,
    .reload = sys_reload,
    .exited = sys_exited,
    .stop = sys_stop,
    .find_address = sys_find_address,
};
