/* The firewall's settings, checked once, with messages that name the
 * setting; and the index of the devices held by the sets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw_config.h"

int fw_net_entry_parse(struct fw_cfg_net *out, const char *text)
{
	memset(out, 0, sizeof(*out));
	if (!strcmp(text, "vpn")) {
		out->vpn = 1;
		return 0;
	}
	const char *via = strstr(text, " via ");
	char prefix[32];
	size_t len = via ? (size_t)(via - text) : strlen(text);
	if (len >= sizeof(prefix))
		return -EINVAL;
	memcpy(prefix, text, len);
	prefix[len] = '\0';
	if (fw_prefix_parse(&out->prefix, prefix, 0))
		return -EINVAL;
	if (via) {
		if (!fw_ifname_valid(via + 5))
			return -EINVAL;
		snprintf(out->via, sizeof(out->via), "%s", via + 5);
	}
	return 0;
}

int fw_ports_add(struct fw_port **ports, size_t *n, struct fw_port p)
{
	for (size_t i = 0; i < *n; i++)
		if ((*ports)[i].port == p.port && (*ports)[i].proto == p.proto)
			return 0;
	struct fw_port *grown = realloc(*ports, (*n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	grown[(*n)++] = p;
	*ports = grown;
	return 1;
}

static const char *string(json_t *config, const char *name)
{
	const char *s = json_string_value(json_object_get(config, name));
	return s ? s : "";
}

static int parse_ports(json_t *config, const char *name, struct fw_port **ports, size_t *n,
                       char *err, size_t errlen)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(config, name), i, v)
	{
		struct fw_port p;
		if (!json_is_string(v) || fw_port_parse(&p, json_string_value(v))) {
			snprintf(err, errlen,
			         "firewall.%s: '%s' is not a port, like \"8080/tcp\" or \"53/udp\"",
			         name, json_is_string(v) ? json_string_value(v) : "?");
			return -EINVAL;
		}
		if (fw_ports_add(ports, n, p) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int compare_roles(const void *a, const void *b)
{
	return strcmp(((const struct fw_cfg_role *)a)->name, ((const struct fw_cfg_role *)b)->name);
}

static int parse_roles(json_t *roles, struct fw_cfg *c, char *err, size_t errlen)
{
	const char *name;
	json_t *list;
	c->roles = calloc(json_object_size(roles) + 1, sizeof(*c->roles));
	if (!c->roles)
		return -ENOMEM;
	json_object_foreach(roles, name, list)
	{
		if (!fw_role_valid(name)) {
			snprintf(err, errlen,
			         "firewall.roles: '%s' is not a role name (1-32 of a-z 0-9 -)",
			         name);
			return -EINVAL;
		}
		if (!json_is_array(list)) {
			snprintf(err, errlen, "firewall.roles.%s must be a list of subnets", name);
			return -EINVAL;
		}
		struct fw_cfg_role *r = &c->roles[c->n_roles++];
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->nets = calloc(json_array_size(list) + 1, sizeof(*r->nets));
		if (!r->nets)
			return -ENOMEM;
		size_t i;
		json_t *v;
		json_array_foreach(list, i, v)
		{
			const char *text = json_string_value(v);
			if (!text || fw_net_entry_parse(&r->nets[r->n_nets], text)) {
				snprintf(err, errlen,
				         "firewall.roles.%s: '%s' is not \"vpn\", a subnet like "
				         "\"172.19.0.0/16\" (no host bits) or \"SUBNET via IFACE\"",
				         name, text ? text : "?");
				return -EINVAL;
			}
			r->n_nets++;
		}
	}
	qsort(c->roles, c->n_roles, sizeof(*c->roles), compare_roles);
	return 0;
}

static int parse_role_names(json_t *config, const char *name, struct fw_role_names *out, char *err,
                            size_t errlen)
{
	json_t *list = json_object_get(config, name), *v;
	size_t i;
	if (!list)
		return 0;
	out->names = calloc(json_array_size(list) + 1, sizeof(*out->names));
	if (!out->names)
		return -ENOMEM;
	json_array_foreach(list, i, v)
	{
		const char *role = json_string_value(v);
		if (!fw_role_valid(role)) {
			snprintf(err, errlen,
			         "firewall.%s: '%s' is not a role name (1-32 of a-z 0-9 -)", name,
			         role ? role : "?");
			return -EINVAL;
		}
		if (!fw_role_named(out, role))
			snprintf(out->names[out->n++], sizeof(*out->names), "%s", role);
	}
	return 0;
}

int fw_role_named(const struct fw_role_names *list, const char *role)
{
	for (size_t i = 0; i < list->n; i++)
		if (!strcmp(list->names[i], role))
			return 1;
	return 0;
}

static int copy_command(char *out, size_t len, json_t *config, const char *name, char *err,
                        size_t errlen)
{
	const char *v = string(config, name);
	if (!v[0] || strlen(v) >= len) {
		snprintf(err, errlen, "firewall.%s must name a program", name);
		return -EINVAL;
	}
	snprintf(out, len, "%s", v);
	return 0;
}

int fw_cfg_parse(struct fw_cfg *out, json_t *config, char *err, size_t errlen)
{
	struct fw_cfg c = {0};
	int rc;
	const char *pub = string(config, "public_interface");
	if (pub[0] && !fw_ifname_valid(pub)) {
		snprintf(err, errlen, "firewall.public_interface: '%s' is not an interface name",
		         pub);
		rc = -EINVAL;
		goto fail;
	}
	snprintf(c.public_if, sizeof(c.public_if), "%s", pub);
	c.host_ping = json_is_true(json_object_get(config, "vpn_host_ping"));
	c.mss_clamp = json_is_true(json_object_get(config, "mss_clamp"));
	json_int_t resync = json_integer_value(json_object_get(config, "resync_interval"));
	if (resync < 0 || resync > 86400) {
		snprintf(err, errlen, "firewall.resync_interval must be 0-86400 seconds");
		rc = -EINVAL;
		goto fail;
	}
	c.resync_interval = (int)resync;
	/* absent (a caller without the declared defaults): the default, keep */
	json_t *on_stop = json_object_get(config, "on_stop");
	if (on_stop &&
	    (!json_is_string(on_stop) || (strcmp(json_string_value(on_stop), "keep") &&
	                                  strcmp(json_string_value(on_stop), "flush")))) {
		snprintf(err, errlen, "firewall.on_stop must be \"keep\" or \"flush\"");
		rc = -EINVAL;
		goto fail;
	}
	c.flush_on_stop = on_stop && !strcmp(json_string_value(on_stop), "flush");
	if ((rc = parse_ports(config, "vpn_host_ports", &c.host_ports, &c.n_host_ports, err,
	                      errlen)) ||
	    (rc = parse_ports(config, "vpn_only_ports", &c.vpn_only, &c.n_vpn_only, err, errlen)) ||
	    (rc = parse_roles(json_object_get(config, "roles"), &c, err, errlen)) ||
	    (rc = parse_role_names(config, "internet_roles", &c.internet_roles, err, errlen)) ||
	    (rc = parse_role_names(config, "full_tunnel_roles", &c.full_tunnel_roles, err,
	                           errlen)) ||
	    (rc = copy_command(c.iptables_restore, sizeof(c.iptables_restore), config,
	                       "iptables_restore", err, errlen)) ||
	    (rc = copy_command(c.iptables_save, sizeof(c.iptables_save), config, "iptables_save",
	                       err, errlen)) ||
	    (rc = copy_command(c.ipset, sizeof(c.ipset), config, "ipset", err, errlen)))
		goto fail;
	*out = c;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	fw_cfg_free(&c);
	return rc;
}

void fw_cfg_free(struct fw_cfg *c)
{
	for (size_t i = 0; c->roles && i < c->n_roles; i++)
		free(c->roles[i].nets);
	free(c->roles);
	free(c->internet_roles.names);
	free(c->full_tunnel_roles.names);
	free(c->host_ports);
	free(c->vpn_only);
	memset(c, 0, sizeof(*c));
}

/* ---- members ---- */

struct fw_members {
	struct fw_member *slots;
	unsigned char *used;
	size_t cap, n;
};

static size_t hash(const char *s)
{
	size_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct fw_members *fw_members_new(void)
{
	struct fw_members *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cap = 64;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	m->used = calloc(m->cap, 1);
	if (!m->slots || !m->used) {
		fw_members_free(m);
		return NULL;
	}
	return m;
}

void fw_members_free(struct fw_members *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m->used);
	free(m);
}

static size_t find_slot(const struct fw_members *m, const char *id)
{
	size_t i = hash(id) & (m->cap - 1);
	while (m->used[i] && strcmp(m->slots[i].id, id))
		i = (i + 1) & (m->cap - 1);
	return i;
}

const struct fw_member *fw_members_get(const struct fw_members *m, const char *id)
{
	size_t i = find_slot(m, id);
	return m->used[i] ? &m->slots[i] : NULL;
}

static int grow(struct fw_members *m)
{
	struct fw_members bigger = {calloc(m->cap * 2, sizeof(*m->slots)), calloc(m->cap * 2, 1),
	                            m->cap * 2, 0};
	if (!bigger.slots || !bigger.used) {
		free(bigger.slots);
		free(bigger.used);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->used[i]) {
			size_t j = find_slot(&bigger, m->slots[i].id);
			bigger.slots[j] = m->slots[i];
			bigger.used[j] = 1;
		}
	free(m->slots);
	free(m->used);
	m->slots = bigger.slots;
	m->used = bigger.used;
	m->cap = bigger.cap;
	return 0;
}

int fw_members_put(struct fw_members *m, const struct fw_member *e)
{
	if ((m->n + 1) * 2 > m->cap && grow(m))
		return -ENOMEM;
	size_t i = find_slot(m, e->id);
	if (!m->used[i])
		m->n++;
	m->slots[i] = *e;
	m->used[i] = 1;
	return 0;
}

/* Backward-shift deletion: no tombstones, lookups stay short. */
void fw_members_del(struct fw_members *m, const char *id)
{
	size_t i = find_slot(m, id);
	if (!m->used[i])
		return;
	m->used[i] = 0;
	m->n--;
	for (size_t j = (i + 1) & (m->cap - 1); m->used[j]; j = (j + 1) & (m->cap - 1)) {
		size_t home = hash(m->slots[j].id) & (m->cap - 1);
		/* move j into the hole at i unless its home lies in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			m->slots[i] = m->slots[j];
			m->used[i] = 1;
			m->used[j] = 0;
			i = j;
		}
	}
}

size_t fw_members_count(const struct fw_members *m)
{
	return m->n;
}

int fw_members_each(const struct fw_members *m, int (*fn)(const struct fw_member *, void *),
                    void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->used[i]) {
			int rc = fn(&m->slots[i], arg);
			if (rc)
				return rc;
		}
	return 0;
}

int fw_member_from_device(struct fw_member *out, const char *id, json_t *device)
{
	const char *state = json_string_value(json_object_get(device, "state"));
	const char *role = json_string_value(json_object_get(device, "role"));
	const char *user = json_string_value(json_object_get(device, "user"));
	const char *address = json_string_value(json_object_get(device, "address"));
	struct fw_prefix p;
	memset(out, 0, sizeof(*out));
	if (!id || strlen(id) >= sizeof(out->id) || !state || strcmp(state, "active") ||
	    !fw_role_valid(role) || !address || fw_prefix_parse(&p, address, 1) || p.len != 32)
		return -ENOENT;
	snprintf(out->id, sizeof(out->id), "%s", id);
	snprintf(out->role, sizeof(out->role), "%s", role);
	snprintf(out->user, sizeof(out->user), "%s",
	         user && strlen(user) <= FW_ROLE_MAX ? user : "");
	out->addr = p.addr;
	return 0;
}
