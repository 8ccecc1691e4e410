#include "full_tunnel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spawn.h"

#define FIRST_TABLE 51820 /* wg-quick's, WireGuard's port */
#define LAST_TABLE  (FIRST_TABLE + 1000)
#define VALID_MARK  "/proc/sys/net/ipv4/conf/all/src_valid_mark"

static int ip_batch(const char *commands, bool force, char **out, char *msg, size_t msglen)
{
	char *argv[] = {"ip", "-4", "-batch", "-", NULL},
	     *forced[] = {"ip", "-4", "-force", "-batch", "-", NULL};
	return mg_spawn_check(force ? forced : argv, commands, strlen(commands), out, msg, msglen);
}

int cl_full_tunnel_free_table(uint32_t *table, struct cl_err *err)
{
	char msg[256] = "", cmd[64];
	for (uint32_t t = FIRST_TABLE; t < LAST_TABLE; t++) {
		char *out = NULL;
		snprintf(cmd, sizeof(cmd), "route show table %u\n", t);
		int rc = ip_batch(cmd, false, &out, msg, sizeof(msg));
		bool empty = !rc && out && !*out;
		free(out);
		if (rc)
			return cl_fail(err, CL_EXIT_TUNNEL, "cannot read the routing tables: %s",
			               msg);
		if (empty) {
			*table = t;
			return 0;
		}
	}
	return cl_fail(err, CL_EXIT_TUNNEL, "no free routing table in %u..%u", FIRST_TABLE,
	               LAST_TABLE - 1);
}

static int read_valid_mark(void)
{
	FILE *f = fopen(VALID_MARK, "re");
	int v = -1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool write_valid_mark(int v)
{
	FILE *f = fopen(VALID_MARK, "we");
	if (!f)
		return false;
	bool ok = fprintf(f, "%d\n", v) > 0;
	return fclose(f) == 0 && ok;
}

static void rules_text(char *buf, size_t size, const char *verb, const char *ifname, uint32_t table)
{
	snprintf(buf, size,
	         "route %s 0.0.0.0/0 dev %s table %u\n"
	         "rule %s not fwmark %u table %u\n"
	         "rule %s table main suppress_prefixlength 0\n",
	         verb, ifname, table, verb, table, table, verb);
}

int cl_full_tunnel_on(const char *ifname, struct cl_full_tunnel *ft, struct cl_err *err)
{
	char text[512], msg[256] = "";
	ft->valid_mark_before = -1;
	rules_text(text, sizeof(text), "add", ifname, ft->table);
	if (ip_batch(text, false, NULL, msg, sizeof(msg))) {
		cl_full_tunnel_off(ifname, ft);
		return cl_fail(err, CL_EXIT_TUNNEL, "cannot route everything through %s: %s",
		               ifname, msg);
	}
	int before = read_valid_mark();
	if (before == 0 && write_valid_mark(1))
		ft->valid_mark_before = before;
	return 0;
}

void cl_full_tunnel_off(const char *ifname, const struct cl_full_tunnel *ft)
{
	char text[512], msg[256];
	if (!ft->table)
		return;
	/* -force: on past a part that is gone (the route goes with the link) */
	rules_text(text, sizeof(text), "del", ifname, ft->table);
	ip_batch(text, true, NULL, msg, sizeof(msg));
	if (ft->valid_mark_before >= 0)
		write_valid_mark(ft->valid_mark_before);
}
