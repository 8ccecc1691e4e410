#include "resolver.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spawn.h"

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

/* A stuck resolvectl must not hold up `meshgate up`. */
#define RESOLVER_TIMEOUT_MS 10000

/* Runs argv (no shell, lib/spawn.h), `input` on its stdin; 0 if it
 * succeeded, else -1 with why on stderr. */
static int run(char *const argv[], const char *input)
{
	struct mg_spawn s = {.argv = argv,
	                     .input = input,
	                     .input_len = input ? strlen(input) : 0,
	                     .timeout_ms = RESOLVER_TIMEOUT_MS};
	struct mg_spawn_result r;
	char msg[512];
	if (mg_spawn_run(&s, &r, msg, sizeof(msg))) {
		fprintf(stderr, "meshgate: %s\n", msg);
		return -1;
	}
	int rc = mg_spawn_succeeded(&r) ? 0 : -1;
	if (rc) {
		mg_spawn_describe(argv[0], &r, msg, sizeof(msg));
		fprintf(stderr, "meshgate: %s\n", msg);
	}
	mg_spawn_result_free(&r);
	return rc;
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
