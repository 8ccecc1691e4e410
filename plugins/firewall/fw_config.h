/* The firewall section of the config, checked and parsed once (init and
 * reload), and the in-memory index of the devices the sets hold. */
#ifndef MESHGATE_FW_CONFIG_H
#define MESHGATE_FW_CONFIG_H

#include <jansson.h>

#include "fw.h"

/* One entry of a role's list: "vpn" (the VPN subnet, whatever wireguard
 * says it is), "PREFIX" (its interface from the routing table) or
 * "PREFIX via IFACE". */
struct fw_cfg_net {
	struct fw_prefix prefix;
	int vpn;
	char via[IF_NAMESIZE];
};

struct fw_cfg_role {
	char name[FW_ROLE_MAX + 1];
	struct fw_cfg_net *nets;
	size_t n_nets;
};

struct fw_cfg {
	char public_if[IF_NAMESIZE];
	int host_ping;
	int mss_clamp;
	struct fw_port *host_ports;
	size_t n_host_ports;
	struct fw_port *vpn_only;
	size_t n_vpn_only;
	struct fw_cfg_role *roles; /* sorted by name */
	size_t n_roles;
	/* Roles whose devices may send all their traffic through the gateway
	 * (internet_roles: when the device asks, `meshgate up --full-tunnel`),
	 * or are told to (full_tunnel_roles): masqueraded out of the public
	 * interface. */
	struct fw_role_names {
		char (*names)[FW_ROLE_MAX + 1];
		size_t n;
	} internet_roles, full_tunnel_roles;
	int resync_interval; /* seconds, 0: never */
	int flush_on_stop;   /* on_stop = "flush": a stop removes everything of ours */
	char iptables_restore[256], iptables_save[256], ipset[256];
};

/* Is the role in the list? */
int fw_role_named(const struct fw_role_names *list, const char *role);

/* 0, or -EINVAL with a message naming the setting in err. */
int fw_cfg_parse(struct fw_cfg *out, json_t *config, char *err, size_t errlen);
void fw_cfg_free(struct fw_cfg *c);
int fw_net_entry_parse(struct fw_cfg_net *out, const char *text);
/* Appends p to ports unless it is there; 1 added, 0 present, -ENOMEM. */
int fw_ports_add(struct fw_port **ports, size_t *n, struct fw_port p);

/* ---- the devices in the sets: id -> address, role, user ---- */

struct fw_member {
	char id[64];
	char user[FW_ROLE_MAX + 1];
	char role[FW_ROLE_MAX + 1];
	uint32_t addr;
};

struct fw_members; /* open addressing on the id */
struct fw_members *fw_members_new(void);
void fw_members_free(struct fw_members *m);
const struct fw_member *fw_members_get(const struct fw_members *m, const char *id);
int fw_members_put(struct fw_members *m, const struct fw_member *e); /* 0 or -ENOMEM */
void fw_members_del(struct fw_members *m, const char *id);
size_t fw_members_count(const struct fw_members *m);
/* Walks every entry; stops when fn returns non-zero and returns that. */
int fw_members_each(const struct fw_members *m, int (*fn)(const struct fw_member *, void *),
                    void *arg);

/* A device record from state as a member: 0 when it belongs in a set
 * (active, address and role well formed), -ENOENT otherwise. */
int fw_member_from_device(struct fw_member *out, const char *id, json_t *device);

#endif
