#include "resolver.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* True when this process runs in the host's own network namespace. */
static int in_host_netns(void)
{
	struct stat self, init;
	if (stat("/proc/self/ns/net", &self) || stat("/proc/1/ns/net", &init))
		return 0; /* cannot tell: do not touch the resolver */
	return self.st_ino == init.st_ino && self.st_dev == init.st_dev;
}

static const char *find_program(const char *name, char *buf, size_t len)
{
	static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(buf, len, "%s/%s", dirs[i], name);
		if (!access(buf, X_OK))
			return buf;
	}
	return NULL;
}

/* Runs argv (no shell), `input` on its stdin; returns its exit status. */
static int run(char *const argv[], const char *input)
{
	int fds[2];
	if (pipe(fds))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[0]);
	if (input && write(fds[1], input, strlen(input)) < 0)
		input = NULL;
	close(fds[1]);
	int status = -1;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int is_address(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

void cl_resolver_apply(const char *ifname, const struct cl_profile *p)
{
	char *servers[8], *domains[8], path[64];
	size_t ns = 0, nd = 0;
	for (size_t i = 0; i < p->n_dns; i++) {
		char *entry = (char *)p->dns[i];
		if (is_address(entry) && ns < 8)
			servers[ns++] = entry;
		else if (!is_address(entry) && nd < 8)
			domains[nd++] = entry;
	}
	if (!ns)
		return;
	const char *zone = nd ? domains[0] : "";
	if (!in_host_netns()) {
		printf("meshgate: DNS %s for '%s' not configured: inside a network namespace the "
		       "host's resolver is not ours to change\n",
		       servers[0], zone);
		return;
	}
	/* systemd-resolved: per-link servers, the zone as a routing domain so
	 * that only its names go to the gateway */
	if (!access("/run/systemd/resolve/resolv.conf", F_OK) &&
	    find_program("resolvectl", path, sizeof(path))) {
		char *dns_argv[12] = {path, "dns", (char *)ifname};
		for (size_t i = 0; i < ns; i++)
			dns_argv[3 + i] = servers[i];
		char routing[300];
		snprintf(routing, sizeof(routing), "~%s", zone);
		char *domain_argv[] = {path, "domain", (char *)ifname, routing, NULL};
		if (!run(dns_argv, NULL) && (!nd || !run(domain_argv, NULL))) {
			printf("meshgate: names in '%s' resolved by %s (systemd-resolved, %s)\n",
			       zone, servers[0], ifname);
			return;
		}
	}
	if (find_program("resolvconf", path, sizeof(path))) {
		char text[1024] = "", record[64];
		size_t used = 0;
		for (size_t i = 0; i < ns; i++)
			used += (size_t)snprintf(text + used, sizeof(text) - used,
			                         "nameserver %s\n", servers[i]);
		if (nd)
			snprintf(text + used, sizeof(text) - used, "search %s\n", zone);
		snprintf(record, sizeof(record), "%s.meshgate", ifname);
		char *argv[] = {path, "-a", record, NULL};
		if (!run(argv, text)) {
			printf("meshgate: resolver set through resolvconf (%s)\n", servers[0]);
			return;
		}
	}
	printf("meshgate: no systemd-resolved nor resolvconf: use %s for names in '%s'\n",
	       servers[0], zone);
}

void cl_resolver_remove(const char *ifname)
{
	char path[64], record[64];
	/* systemd-resolved forgets a link that is gone: only resolvconf keeps
	 * what it was given */
	if (!in_host_netns() || !find_program("resolvconf", path, sizeof(path)))
		return;
	snprintf(record, sizeof(record), "%s.meshgate", ifname);
	char *argv[] = {path, "-d", record, "-f", NULL};
	run(argv, NULL);
}
