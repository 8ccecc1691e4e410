/* The mesh's data plane as the system has it: the interface and its peers
 * through lib/wg (wireguard-go started by us, as the wireguard plugin
 * does), its address and routes through lib/netlink, the nat chain in one
 * iptables-restore --noflush through lib/spawn. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh.h"
#include "nl.h"
#include "spawn.h"

struct mesh_system {
	const struct wg_backend *backend;
	pid_t daemon_pid; /* wireguard-go when we started it */
	char iptables_restore[256], iptables_save[256];
};

int mesh_system_new(const char *backend, const char *iptables_restore, const char *iptables_save,
                    struct mesh_system **out, char *err, size_t errlen)
{
	struct mesh_system *sys = calloc(1, sizeof(*sys));
	if (!sys)
		return -ENOMEM;
	int rc = wg_backend_select(backend, &sys->backend, err, errlen);
	if (rc) {
		free(sys);
		return rc;
	}
	snprintf(sys->iptables_restore, sizeof(sys->iptables_restore), "%s", iptables_restore);
	snprintf(sys->iptables_save, sizeof(sys->iptables_save), "%s", iptables_save);
	*out = sys;
	return 0;
}

void mesh_system_free(struct mesh_system *sys)
{
	free(sys);
}

static int sys_up(void *arg, const char *ifname, const wg_key private_key, int port, char *err,
                  size_t errlen)
{
	struct mesh_system *sys = arg;
	int rc = wg_interface_adopt(sys->backend, ifname, err, errlen);
	if (rc == 1) /* left by a crash: made anew, so that no stale route stays */
		rc = wg_interface_delete(sys->backend, ifname, 0, err, errlen);
	if (!rc)
		rc = wg_interface_create(sys->backend, ifname, WG_CREATE_DETACH, &sys->daemon_pid,
		                         err, errlen);
	if (!rc)
		rc = wg_device_configure(sys->backend, ifname, private_key, port, -1, err, errlen);
	if (!rc && (rc = nl_link_set_up(ifname, true)))
		snprintf(err, errlen, "%s: %s", ifname, strerror(-rc));
	return rc;
}

static int sys_address(void *arg, const char *ifname, const char *prefix, char *err, size_t errlen)
{
	(void)arg;
	int rc = nl_addr_add(ifname, prefix);
	if (rc == -EEXIST)
		rc = 0;
	if (rc)
		snprintf(err, errlen, "%s on %s: %s", prefix, ifname, strerror(-rc));
	return rc;
}

static int sys_peers_reconcile(void *arg, const char *ifname, const struct wg_peer *peers, size_t n,
                               char *err, size_t errlen)
{
	struct mesh_system *sys = arg;
	return wg_peers_reconcile(sys->backend, ifname, peers, n, NULL, err, errlen);
}

static int sys_peer_set(void *arg, const char *ifname, const struct wg_peer *peer, char *err,
                        size_t errlen)
{
	struct mesh_system *sys = arg;
	return wg_peers_upsert(sys->backend, ifname, peer, 1, err, errlen);
}

static int sys_peer_remove(void *arg, const char *ifname, const wg_key key, char *err,
                           size_t errlen)
{
	struct mesh_system *sys = arg;
	return wg_peers_remove(sys->backend, ifname, (const wg_key *)key, 1, err, errlen);
}

static int sys_peer_replace(void *arg, const char *ifname, const wg_key old_key,
                            const struct wg_peer *peer, char *err, size_t errlen)
{
	struct mesh_system *sys = arg;
	return wg_peer_replace(sys->backend, ifname, old_key, peer, err, errlen);
}

static int sys_key(void *arg, const char *ifname, const wg_key private_key, char *err,
                   size_t errlen)
{
	struct mesh_system *sys = arg;
	return wg_device_configure(sys->backend, ifname, private_key, -1, -1, err, errlen);
}

static int sys_route(void *arg, const char *ifname, const char *subnet, bool add, char *err,
                     size_t errlen)
{
	(void)arg;
	int rc = add ? nl_route_add(subnet, ifname, NULL) : nl_route_del(subnet, ifname, NULL);
	if (rc == (add ? -EEXIST : -ESRCH) || (!add && (rc == -ENODEV || rc == -EADDRNOTAVAIL)))
		rc = 0;
	if (rc)
		snprintf(err, errlen, "route %s via %s: %s", subnet, ifname, strerror(-rc));
	return rc;
}

/* How many jumps to our chain POSTROUTING has. */
static int count_hooks(struct mesh_system *sys, size_t *hooks, char *err, size_t errlen)
{
	char *argv[] = {sys->iptables_save, "-t", "nat", NULL}, *out = NULL;
	int rc = mg_spawn_check(argv, NULL, 0, &out, err, errlen);
	*hooks = 0;
	for (char *line = out; !rc && line && *line;) {
		char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		*hooks += n == strlen(MESH_NAT_HOOK) && !strncmp(line, MESH_NAT_HOOK, n);
		line = end ? end + 1 : NULL;
	}
	free(out);
	return rc;
}

static int sys_nat(void *arg, const char *ifname, const char *vpn_subnet, const char *mesh_address,
                   char *err, size_t errlen)
{
	struct mesh_system *sys = arg;
	char *restore[] = {sys->iptables_restore, "-w", "5", "--noflush", NULL};
	size_t hooks;
	int rc = count_hooks(sys, &hooks, err, errlen);
	if (rc)
		return rc;
	char *text = mesh_render_nat(ifname, vpn_subnet, mesh_address, hooks);
	if (!text)
		return -ENOMEM;
	rc = mg_spawn_check(restore, text, strlen(text), NULL, err, errlen);
	free(text);
	return rc;
}

static int sys_read(void *arg, const char *ifname, struct wg_device **dev, char *err, size_t errlen)
{
	struct mesh_system *sys = arg;
	return wg_device_get(sys->backend, ifname, dev, err, errlen);
}

/* The interface with its routes, and the nat chain with its hook. */
static void sys_down(void *arg, const char *ifname)
{
	struct mesh_system *sys = arg;
	char err[256];
	size_t hooks = 0;
	wg_interface_delete(sys->backend, ifname, sys->daemon_pid, err, sizeof(err));
	sys->daemon_pid = 0;
	if (count_hooks(sys, &hooks, err, sizeof(err)))
		return;
	char text[512], *restore[] = {sys->iptables_restore, "-w", "5", "--noflush", NULL};
	int n = snprintf(text, sizeof(text), "*nat\n:%s - [0:0]\n", MESH_NAT_CHAIN);
	for (; hooks && n < 400; hooks--)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "-D POSTROUTING -j %s\n",
		              MESH_NAT_CHAIN);
	snprintf(text + n, sizeof(text) - (size_t)n, "-X %s\nCOMMIT\n", MESH_NAT_CHAIN);
	mg_spawn_check(restore, text, strlen(text), NULL, err, sizeof(err));
}

const struct mesh_dataplane mesh_system_dataplane = {
    .up = sys_up,
    .address = sys_address,
    .peers_reconcile = sys_peers_reconcile,
    .peer_set = sys_peer_set,
    .peer_remove = sys_peer_remove,
    .peer_replace = sys_peer_replace,
    .key = sys_key,
    .route = sys_route,
    .nat = sys_nat,
    .read = sys_read,
    .down = sys_down,
};
