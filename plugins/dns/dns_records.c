/* The names: service records (config and runtime), the active devices, and
 * the index built from them. A change of the records or the settings
 * rebuilds the index whole and swaps it in; a device change only touches
 * the names it changes (dns_names.c decides which), in place under the
 * write lock (docs/dns.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "metrics.h"

/* ---- devices ---- */

/* The names of the service records: they win over devices. */
static json_t *service_names(struct dns *d)
{
	json_t *names = json_object(), *r, *addrs;
	size_t i;
	const char *name;
	json_object_set_new(names, DNS_NS_LABEL, json_true()); /* the zone's name server */
	json_array_foreach(d->cfg.records, i, r)
	{
		json_object_set_new(names, json_string_value(json_object_get(r, "name")),
		                    json_true());
	}
	json_object_foreach(d->runtime, name, addrs)
	{
		json_object_set_new(names, name, json_true());
	}
	return names;
}

/* ---- the index ---- */

/* name (relative text) + zone, as wire */
static int fqdn(struct dns *d, const char *name, uint8_t *wire, size_t *len)
{
	uint8_t rel[DNS_NAME_MAX];
	size_t rlen;
	if (dns_name_from_text(name, rel, &rlen))
		return -EINVAL;
	return dns_name_concat(rel, rlen, d->cfg.zone, d->cfg.zone_len, wire, len);
}

/* The address RR of a name and its PTR, added or (present 0) taken away. */
static int set_address(struct dns_index *idx, const uint8_t *name, size_t len, int family,
                       const uint8_t *addr, int present)
{
	uint8_t rev[DNS_NAME_MAX];
	size_t rlen;
	uint16_t type = family == AF_INET ? DNS_T_A : DNS_T_AAAA;
	size_t alen = family == AF_INET ? 4 : 16;
	int rc = 0;
	if (dns_reverse_name(family, addr, rev, &rlen))
		return dns_index_set(idx, name, len, type, addr, alen, present);
	/* an IPv4 PTR is kept by its name's A RR (the index's address table):
	 * the A comes first and goes last */
	if (present)
		rc = dns_index_set(idx, name, len, type, addr, alen, 1);
	if (!rc)
		rc = dns_index_set(idx, rev, rlen, DNS_T_PTR, name, len, present);
	if (!rc && !present)
		rc = dns_index_set(idx, name, len, type, addr, alen, 0);
	return rc;
}

/* A device's records under one of its names. */
static int set_device(struct dns *d, struct dns_index *idx, const struct dns_dev *dev, int named,
                      int present)
{
	uint8_t wire[DNS_NAME_MAX];
	size_t len;
	if (fqdn(d, dns_dev_name(dev, named), wire, &len))
		return 0; /* not a host name: the device has no records */
	return set_address(idx, wire, len, dev->family, dev->addr, present);
}

/* The reverse zones of the VPN subnet: /8, /16 or /24 zones covering it. */
static int reverse_zones(struct dns *d, struct dns_index *idx)
{
	if (!d->have_vpn || d->vpn.family != AF_INET)
		return 0;
	int len = d->vpn.len < 8 ? 8 : (d->vpn.len + 7) / 8 * 8;
	if (len > 24)
		len = 24;
	uint32_t base = (uint32_t)d->vpn.addr[0] << 24 | (uint32_t)d->vpn.addr[1] << 16 |
	                (uint32_t)d->vpn.addr[2] << 8 | d->vpn.addr[3];
	uint32_t count = d->vpn.len >= len ? 1 : 1u << (len - d->vpn.len);
	for (uint32_t k = 0; k < count; k++) {
		uint32_t net = base + (k << (32 - len));
		uint8_t wire[DNS_NAME_MAX], addr[4] = {(uint8_t)(net >> 24), (uint8_t)(net >> 16),
		                                       (uint8_t)(net >> 8), (uint8_t)net};
		size_t wlen, skip = 0;
		dns_reverse_name(AF_INET, addr, wire, &wlen);
		for (int octet = 4; octet > len / 8; octet--) /* drop the host labels */
			skip += 1u + wire[skip];
		int rc =
		    dns_index_zone(idx, wire + skip, wlen - skip, d->cfg.zone, d->cfg.zone_len);
		if (rc)
			return rc;
	}
	return 0;
}

static void acl_of(struct dns *d, struct dns_acl *acl)
{
	memset(acl, 0, sizeof(*acl));
	dns_prefix_parse("127.0.0.0/8", &acl->prefix[acl->n++]);
	dns_prefix_parse("::1", &acl->prefix[acl->n++]);
	if (d->have_vpn)
		acl->prefix[acl->n++] = d->vpn;
	for (size_t i = 0; i < d->cfg.nallow && acl->n < DNS_MAX_PREFIXES; i++)
		acl->prefix[acl->n++] = d->cfg.allow[i];
}

static int add_service(struct dns *d, struct dns_index *idx, const char *name, const char *address)
{
	uint8_t wire[DNS_NAME_MAX], addr[16];
	size_t len;
	int family;
	if (fqdn(d, name, wire, &len) || dns_ip_parse(address, &family, addr))
		return -EINVAL;
	return set_address(idx, wire, len, family, addr, 1);
}

/* ns.ZONE, the NS and MNAME of every zone served, has the server's own
 * addresses (with their PTR), unless a service record gives it others. */
static int add_name_server(struct dns *d, struct dns_index *idx)
{
	json_t *a;
	size_t i;
	int rc = 0;
	if (json_object_get(d->runtime, DNS_NS_LABEL))
		return 0;
	json_array_foreach(d->cfg.records, i, a)
	{
		if (!strcmp(json_string_value(json_object_get(a, "name")), DNS_NS_LABEL))
			return 0;
	}
	json_array_foreach(d->ns_addresses, i, a)
	{
		if (!rc)
			rc = add_service(d, idx, DNS_NS_LABEL, json_string_value(a));
	}
	return rc;
}

struct build {
	struct dns *d;
	struct dns_index *idx;
	int rc;
};

static void build_device(const struct dns_dev *dev, void *arg)
{
	struct build *b = arg;
	if (!b->rc && dev->named)
		b->rc = set_device(b->d, b->idx, dev, dev->named, 1);
}

static int build(struct dns *d, struct dns_index *idx)
{
	json_t *r, *addrs, *a, *taken = service_names(d);
	size_t i, k;
	const char *name;
	int rc = taken ? dns_names_services(d->devices, taken) : -ENOMEM;
	json_decref(taken);
	if (!rc)
		rc =
		    dns_index_zone(idx, d->cfg.zone, d->cfg.zone_len, d->cfg.zone, d->cfg.zone_len);
	if (!rc)
		rc = reverse_zones(d, idx);
	/* devices first: their PTR comes before a service's of the same address */
	struct build b = {d, idx, rc};
	dns_names_foreach(d->devices, build_device, &b);
	rc = b.rc;
	json_array_foreach(d->cfg.records, i, r)
	{
		if (rc)
			break;
		rc = add_service(d, idx, json_string_value(json_object_get(r, "name")),
		                 json_string_value(json_object_get(r, "address")));
	}
	json_object_foreach(d->runtime, name, addrs)
	{
		json_array_foreach(addrs, k, a)
		{
			if (!rc)
				rc = add_service(d, idx, name, json_string_value(a));
		}
	}
	if (!rc)
		rc = add_name_server(d, idx);
	return rc ? rc : dns_index_freeze(idx);
}

static uint32_t next_serial(struct dns *d)
{
	uint32_t now = (uint32_t)(mg_now_ms(d->ctx) / 1000);
	return now > d->serial ? now : d->serial + 1;
}

struct dns_index *dns_build(struct dns *d, uint32_t serial)
{
	struct dns_index *idx = dns_index_new(d->cfg.ttl, serial);
	/* a name a device (its PTR is in the address table), and a few empty
	 * non-terminals */
	size_t names = dns_names_devices(d->devices) + 64;
	int rc = !idx ? -ENOMEM : dns_index_reserve(idx, names) ? -ENOMEM : build(d, idx);
	if (rc) {
		mg_error_log(d->ctx, "cannot build the names: %s", strerror(-rc));
		dns_index_free(idx);
		return NULL;
	}
	return idx;
}

int dns_rebuild(struct dns *d)
{
	uint32_t serial = next_serial(d);
	struct dns_index *idx = dns_build(d, serial);
	struct dns_acl acl;
	if (!idx)
		return -ENOMEM;
	acl_of(d, &acl);
	pthread_rwlock_wrlock(&d->srv.lock);
	struct dns_index *old = d->srv.index;
	d->srv.index = idx;
	d->srv.acl = acl;
	d->srv.can_forward = d->cfg.nupstream > 0;
	d->srv.fast_path = d->cfg.fast_path;
	pthread_rwlock_unlock(&d->srv.lock);
	dns_index_free(old);
	d->serial = serial;
	mg_debug(d->ctx, "%zu names, serial %u", dns_index_names(idx), serial);
	return 0;
}

static void rebuild_timer(mg_ctx *ctx, void *arg)
{
	struct dns *d = arg;
	(void)ctx;
	d->rebuild_timer = 0;
	dns_rebuild(d);
}

void dns_rebuild_soon(struct dns *d)
{
	if (d->rebuild_timer > 0)
		return;
	d->rebuild_timer = mg_timer_add(d->ctx, 0, 0, rebuild_timer, d);
	if (d->rebuild_timer <= 0) {
		d->rebuild_timer = 0;
		dns_rebuild(d);
	}
}

/* ---- the sources, from state ---- */

/* A device record as the device table has it: 0, or -ENOENT when it has
 * no name (not active, no address). The strings point into the record
 * and label. */
static int device_info(const char *id, json_t *device, struct dns_dev_info *info,
                       char label[DNS_LABEL_MAX + 1])
{
	const char *state = json_string_value(json_object_get(device, "state"));
	const char *user = json_string_value(json_object_get(device, "user"));
	if (!state || strcmp(state, "active") ||
	    dns_ip_parse(json_string_value(json_object_get(device, "address")), &info->family,
	                 info->addr))
		return -ENOENT;
	dns_device_label(json_string_value(json_object_get(device, "name")), user, label);
	info->id = id;
	info->label = label;
	info->user = user ? user : "";
	info->created = json_integer_value(json_object_get(device, "created_at"));
	return 0;
}

static int load_device(const char *key, json_t *value, void *arg)
{
	struct dns *d = arg;
	struct dns_dev_info info = {0};
	char label[DNS_LABEL_MAX + 1];
	if (device_info(key, value, &info, label))
		return 0;
	return dns_names_put(d->devices, &info, NULL, NULL) < 0 ? -ENOMEM : 0;
}

static int load_record(const char *key, json_t *value, void *arg)
{
	struct dns *d = arg;
	const char *name = key + strlen(DNS_RECORD_PREFIX);
	json_t *addrs = json_object_get(value, "addresses");
	uint8_t wire[DNS_NAME_MAX];
	size_t len;
	if (json_is_array(addrs) && !fqdn(d, name, wire, &len))
		json_object_set(d->runtime, name, addrs);
	else
		mg_warn(d->ctx, "ignoring the malformed record %s of db %s", key, DNS_DB);
	return 0;
}

/* The VPN subnet (ACL, reverse zones) and the gateway's own address in
 * it (the default listen address, ns.ZONE) from wg/server. 1 when either
 * changed. */
int dns_vpn_load(struct dns *d)
{
	mg_txn *txn;
	json_t *server = NULL;
	struct dns_prefix vpn;
	char host[INET6_ADDRSTRLEN] = "";
	uint8_t addr[16];
	int have = 0, family;
	if (mg_txn_begin(d->ctx, MG_TXN_READ, &txn))
		return 0;
	if (!mg_state_get(d->ctx, txn, "wg", "server", &server)) {
		const char *address = json_string_value(json_object_get(server, "address"));
		if (!dns_prefix_parse(address, &vpn) && !dns_ip_parse(address, &family, addr)) {
			have = 1;
			inet_ntop(family, addr, host, sizeof(host));
		}
	}
	mg_txn_abort(d->ctx, txn);
	json_decref(server);
	int changed = have != d->have_vpn || (have && memcmp(&vpn, &d->vpn, sizeof(vpn))) ||
	              strcmp(host, d->vpn_host);
	d->have_vpn = have;
	if (have)
		d->vpn = vpn;
	snprintf(d->vpn_host, sizeof(d->vpn_host), "%s", host);
	return changed;
}

int dns_sources_load(struct dns *d)
{
	mg_txn *txn;
	dns_names_clear(d->devices);
	json_object_clear(d->runtime);
	int rc = mg_txn_begin(d->ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = mg_state_foreach(d->ctx, txn, "devices", NULL, load_device, d);
	if (!rc || rc == -ENOENT)
		rc = mg_state_foreach(d->ctx, txn, DNS_DB, DNS_RECORD_PREFIX, load_record, d);
	mg_txn_abort(d->ctx, txn);
	if (rc == -ENOENT)
		rc = 0;
	dns_vpn_load(d);
	return rc;
}

struct patch {
	struct dns *d;
	int rc;
};

static void patch_device(const struct dns_dev *dev, int named, int present, void *arg)
{
	struct patch *p = arg;
	if (!p->rc)
		p->rc = set_device(p->d, p->d->srv.index, dev, named, present);
}

/* A device changed: its names, and the few others the change moves, are
 * patched into the published index in place. A rebuild that is due
 * anyway, or a patch that fails, takes the whole index instead. */
void dns_device_changed(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	struct dns *d = ctx->self;
	const char *id = json_string_value(json_object_get(payload, "id"));
	json_t *device = NULL;
	struct dns_dev_info info = {0};
	char label[DNS_LABEL_MAX + 1];
	int have = 0;
	mg_txn *txn;
	(void)topic;
	(void)arg;
	if (!id)
		return;
	/* the record is the truth; the payload only says which one changed */
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		if (!mg_state_get(ctx, txn, "devices", id, &device))
			have = !device_info(id, device, &info, label);
		mg_txn_abort(ctx, txn);
	}
	int live = d->srv.index && !d->rebuild_timer;
	struct patch p = {d, 0};
	if (live)
		pthread_rwlock_wrlock(&d->srv.lock);
	int rc = have ? dns_names_put(d->devices, &info, live ? patch_device : NULL, &p)
	              : dns_names_del(d->devices, id, live ? patch_device : NULL, &p);
	if (live && !rc && !p.rc) {
		d->serial = next_serial(d);
		dns_index_set_serial(d->srv.index, d->serial);
	}
	if (live)
		pthread_rwlock_unlock(&d->srv.lock);
	json_decref(device);
	if (rc < 0) { /* the table is as it was: read it again */
		mg_error_log(ctx, "cannot take device %s: %s", id, strerror(-rc));
		dns_sources_load(d);
	}
	if (rc || p.rc)
		dns_rebuild_soon(d);
}

void dns_wg_changed(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	struct dns *d = ctx->self;
	(void)topic;
	(void)arg;
	const char *key = json_string_value(json_object_get(payload, "key"));
	if (!key || strcmp(key, "server"))
		return;
	if (!dns_vpn_load(d))
		return;
	/* the default listen address and ns.ZONE follow the VPN address */
	if (dns_listen_update(d, &d->cfg))
		mg_error_log(d->ctx, "cannot listen on the new VPN address; the old stays");
	dns_publish_server(d);
	dns_rebuild_soon(d);
}

json_t *dns_server_addresses(const struct dns *d)
{
	json_t *addresses = json_array(), *l;
	size_t i;
	json_array_foreach(d->listening, i, l)
	{
		struct sockaddr_storage ss;
		socklen_t len;
		char host[INET6_ADDRSTRLEN];
		if (dns_sockaddr_parse(json_string_value(l), 53, &ss, &len))
			continue;
		int v4 = ss.ss_family == AF_INET;
		const void *a = v4 ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
		                   : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
		uint16_t port = ntohs(v4 ? ((struct sockaddr_in *)&ss)->sin_port
		                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
		inet_ntop(ss.ss_family, a, host, sizeof(host));
		if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
			/* a wildcard covers the VPN address; devices ask on port 53 */
			int same_family = (strchr(d->vpn_host, ':') != NULL) == !v4;
			if (port != 53 || !d->vpn_host[0] || !same_family)
				continue;
			snprintf(host, sizeof(host), "%s", d->vpn_host);
		}
		int seen = 0;
		json_t *x;
		size_t k;
		json_array_foreach(addresses, k, x)
		{
			seen |= !strcmp(json_string_value(x), host);
		}
		if (!seen)
			json_array_append_new(addresses, json_string(host));
	}
	return addresses;
}

/* Writes dns_node/server (where clients find this node's server) when it
 * changed: the
 * addresses clients are told (e.g. by preauth), the listen addresses, the
 * zone. Before the VPN address is known (listen following it) the
 * addresses are empty: devices keep their own resolver. */
void dns_publish_server(struct dns *d)
{
	json_t *old = NULL;
	json_t *rec = json_pack("{s:o, s:O, s:s}", "addresses", dns_server_addresses(d), "listen",
	                        d->listening, "zone", d->cfg.zone_text);
	mg_txn *txn;
	if (!rec || mg_txn_begin(d->ctx, 0, &txn)) {
		json_decref(rec);
		return;
	}
	if (!mg_state_get(d->ctx, txn, DNS_NODE_DB, DNS_SERVER_KEY, &old))
		json_object_del(old, "v");
	if (old && json_equal(old, rec)) {
		mg_txn_abort(d->ctx, txn);
	} else if (mg_state_put(d->ctx, txn, DNS_NODE_DB, DNS_SERVER_KEY, rec) ||
	           mg_txn_commit(d->ctx, txn)) {
		mg_warn(d->ctx, "cannot write %s/%s", DNS_NODE_DB, DNS_SERVER_KEY);
	}
	json_decref(old);
	json_decref(rec);
}

/* ---- services ---- */

/* The members of the requests: a name as typed (escapes included) and an
 * address in text. What they mean, record_name and address_text check. */
#define NAME_FIELD(required)                                           \
	{                                                              \
		"name", MG_FIELD_STRING, required, 1, DNS_TEXT_MAX - 1 \
	}
#define ADDRESS_FIELD(required)                                               \
	{                                                                     \
		"address", MG_FIELD_STRING, required, 1, INET6_ADDRSTRLEN - 1 \
	}

/* A record name as given, relative to the zone; and fits in it. */
static int record_name(struct dns *d, const char *given, char *out, size_t outlen)
{
	uint8_t wire[DNS_NAME_MAX];
	size_t wlen;
	if (dns_relative_name(given, d->cfg.zone_text, out, outlen) || fqdn(d, out, wire, &wlen))
		return -EINVAL;
	return 0;
}

static int address_text(const char *given, char *out, size_t outlen)
{
	uint8_t addr[16];
	int family;
	if (!given || strchr(given, '/') || dns_ip_parse(given, &family, addr))
		return -EINVAL;
	inet_ntop(family, addr, out, (socklen_t)outlen);
	return 0;
}

/* How often a change is tried when its commit loses races to other nodes
 * of a cluster (-ESTALE) before it is answered "conflict". */
#define COMMIT_TRIES 5

/* One try of change_record, in one transaction. */
static int change_record_once(struct dns *d, const char *key, const char *address, int add,
                              json_t **addrs, size_t *deleted)
{
	mg_txn *txn;
	json_t *rec = NULL, *x;
	size_t i;
	int rc = mg_txn_begin(d->ctx, 0, &txn);
	if (rc)
		return rc;
	rc = mg_state_get(d->ctx, txn, DNS_DB, key, &rec);
	json_t *old = json_object_get(rec, "addresses");
	if (rc == -ENOENT && add)
		rc = 0;
	int present = 0;
	*addrs = json_array();
	*deleted = 0;
	json_array_foreach(json_is_array(old) ? old : NULL, i, x)
	{
		const char *a = json_string_value(x);
		int match = a && ((!add && !address[0]) || !strcmp(a, address));
		present |= match;
		if (match && !add)
			(*deleted)++;
		else
			json_array_append(*addrs, x);
	}
	size_t had = json_array_size(old);
	json_decref(rec);
	if (!rc && add && present)
		rc = 1; /* there already */
	else if (!rc && add && had >= DNS_RR_PER_NAME)
		rc = -E2BIG;
	else if (!rc && !add && !*deleted)
		rc = 1;
	if (!rc && add)
		json_array_append_new(*addrs, json_string(address));
	if (!rc && json_array_size(*addrs)) {
		const char *name = key + strlen(DNS_RECORD_PREFIX);
		json_t *next = json_pack("{s:s, s:O}", "name", name, "addresses", *addrs);
		rc = mg_state_put(d->ctx, txn, DNS_DB, key, next);
		json_decref(next);
	} else if (!rc) {
		rc = mg_state_del(d->ctx, txn, DNS_DB, key);
	}
	if (rc) {
		mg_txn_abort(d->ctx, txn);
	} else if ((rc = mg_txn_commit(d->ctx, txn))) {
		json_decref(*addrs);
		*addrs = NULL;
	}
	if (rc < 0 && *addrs) {
		json_decref(*addrs);
		*addrs = NULL;
	}
	return rc;
}

/* The runtime record `name`: `address` added (add) or removed (!add; ""
 * removes them all), read and written in one transaction, so that what
 * another node of a cluster changed meanwhile is kept; a commit that lost
 * a race to one (-ESTALE) is tried again on the caught-up mirror. 0 and
 * *addrs (the record's addresses now, a new reference) when it changed, 1
 * and *addrs when there was nothing to change (the address is there
 * already, or not there to remove); -ENOENT: no such record to remove;
 * -E2BIG: the name has DNS_RR_PER_NAME addresses; or another error. */
static int change_record(struct dns *d, const char *name, const char *address, int add,
                         json_t **addrs, size_t *deleted)
{
	char key[DNS_TEXT_MAX + 16];
	int rc = -ESTALE;
	snprintf(key, sizeof(key), "%s%s", DNS_RECORD_PREFIX, name);
	for (int tries = 0; rc == -ESTALE && tries < COMMIT_TRIES; tries++)
		rc = change_record_once(d, key, address, add, addrs, deleted);
	if (rc >= 0) {
		/* what state holds is the truth, another node's part included */
		if (json_array_size(*addrs))
			json_object_set(d->runtime, name, *addrs);
		else
			json_object_del(d->runtime, name);
	}
	return rc;
}

/* The reply to a change_record that failed to write. */
static json_t *write_error(int rc)
{
	if (rc == -EHOSTUNREACH)
		return mg_error("unavailable",
		                "cannot write the record: the cluster cannot take a write now (no "
		                "etcd quorum)");
	if (rc == -ESTALE)
		return mg_error("conflict",
		                "cannot write the record: other gateways of the cluster kept "
		                "changing it; try again");
	return mg_error("internal", "cannot write the record: %s", strerror(-rc));
}

/* state.dns: a runtime record another node of a cluster added, changed or
 * removed is taken as dns.add and dns.del take ours (those are served
 * already; dns_node/server is each node's own). */
void dns_records_changed(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	struct dns *d = ctx->self;
	const char *key = json_string_value(json_object_get(payload, "key"));
	json_t *rec = NULL;
	mg_txn *txn;
	(void)topic;
	(void)arg;
	if (!json_is_true(json_object_get(payload, "remote")) || !key ||
	    strncmp(key, DNS_RECORD_PREFIX, strlen(DNS_RECORD_PREFIX)))
		return;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return;
	int rc = mg_state_get(ctx, txn, DNS_DB, key, &rec);
	mg_txn_abort(ctx, txn);
	json_object_del(d->runtime, key + strlen(DNS_RECORD_PREFIX));
	if (!rc)
		load_record(key, rec, d);
	json_decref(rec);
	mg_info(ctx, "record %s changed by another node", key + strlen(DNS_RECORD_PREFIX));
	dns_rebuild_soon(d);
}

static json_t *record_reply(struct dns *d, const char *name)
{
	char fq[DNS_TEXT_MAX * 2];
	json_t *addrs = json_object_get(d->runtime, name);
	snprintf(fq, sizeof(fq), "%s.%s", name, d->cfg.zone_text);
	return json_pack("{s:s, s:s, s:o}", "name", name, "fqdn", fq, "addresses",
	                 addrs ? json_incref(addrs) : json_array());
}

json_t *dns_svc_add(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {NAME_FIELD(1), ADDRESS_FIELD(1), {0}};
	struct dns *d = ctx->self;
	char name[DNS_TEXT_MAX], address[INET6_ADDRSTRLEN];
	(void)service;
	(void)arg;
	json_t *bad = mg_request_check(ctx, request, fields);
	if (bad)
		return bad;
	const char *given = json_string_value(json_object_get(request, "name"));
	if (record_name(d, given, name, sizeof(name)))
		return mg_field_error(
		    "name",
		    "'%.100s' is not a host name inside %s (labels of letters, digits, "
		    "'-' and '_', at most 63 characters each)",
		    given, d->cfg.zone_text);
	if (address_text(json_string_value(json_object_get(request, "address")), address,
	                 sizeof(address)))
		return mg_field_error("address", "'address' must be an IPv4 or IPv6 address");
	json_t *addrs;
	size_t deleted;
	int rc = change_record(d, name, address, 1, &addrs, &deleted);
	if (rc == -E2BIG)
		return mg_field_error("name", "%s has %d addresses already", name, DNS_RR_PER_NAME);
	if (rc < 0)
		return write_error(rc);
	json_decref(addrs);
	dns_rebuild(d); /* live before the reply */
	if (!rc)
		mg_info(ctx, "record %s.%s %s added", name, d->cfg.zone_text, address);
	return record_reply(d, name);
}

json_t *dns_svc_del(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {NAME_FIELD(1), ADDRESS_FIELD(0), {0}};
	struct dns *d = ctx->self;
	char name[DNS_TEXT_MAX], address[INET6_ADDRSTRLEN] = "";
	json_t *r;
	size_t i;
	(void)service;
	(void)arg;
	json_t *bad = mg_request_check(ctx, request, fields);
	if (bad)
		return bad;
	const char *given = json_string_value(json_object_get(request, "name"));
	if (record_name(d, given, name, sizeof(name)))
		return mg_field_error("name", "'%.100s' is not a host name inside %s", given,
		                      d->cfg.zone_text);
	const char *a = json_string_value(json_object_get(request, "address"));
	if (a && address_text(a, address, sizeof(address)))
		return mg_field_error("address", "'address' must be an IPv4 or IPv6 address");
	json_t *addrs;
	size_t deleted;
	int rc = change_record(d, name, address, 0, &addrs, &deleted);
	if (rc == -ENOENT) {
		json_array_foreach(d->cfg.records, i, r)
		{
			if (!strcmp(json_string_value(json_object_get(r, "name")), name))
				return mg_error("conflict",
				                "%s.%s comes from the config file (dns.records): "
				                "edit it there",
				                name, d->cfg.zone_text);
		}
		return mg_error("not_found", "no record %s.%s was added at runtime", name,
		                d->cfg.zone_text);
	}
	if (rc < 0)
		return write_error(rc);
	json_decref(addrs);
	dns_rebuild(d);
	if (rc == 1)
		return mg_error("not_found", "%s.%s has no address %s", name, d->cfg.zone_text,
		                address);
	mg_info(ctx, "record %s.%s: %zu address(es) deleted", name, d->cfg.zone_text, deleted);
	json_t *reply = record_reply(d, name);
	json_object_set_new(reply, "deleted", json_integer((json_int_t)deleted));
	return reply;
}

static void list_add(json_t *list, struct dns *d, const char *name, const char *address,
                     const char *source)
{
	char fq[DNS_TEXT_MAX * 2];
	uint8_t addr[16];
	int family = AF_INET;
	dns_ip_parse(address, &family, addr);
	snprintf(fq, sizeof(fq), "%s.%s", name, d->cfg.zone_text);
	json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "name", fq, "type",
	                                      family == AF_INET ? "A" : "AAAA", "address", address,
	                                      "source", source));
}

struct listing {
	struct dns *d;
	json_t *list;
};

static void list_device(const struct dns_dev *dev, void *arg)
{
	struct listing *l = arg;
	char text[INET6_ADDRSTRLEN];
	if (!dev->named)
		return;
	inet_ntop(dev->family, dev->addr, text, sizeof(text));
	list_add(l->list, l->d, dns_dev_name(dev, dev->named), text, "device");
	json_t *e = json_array_get(l->list, json_array_size(l->list) - 1);
	json_object_set_new(e, "device", json_string(dev->id));
	json_object_set_new(e, "user", json_string(dns_dev_user(dev)));
}

static int by_name(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(json_string_value(json_object_get(x, "name")),
	               json_string_value(json_object_get(y, "name")));
	return c ? c
	         : strcmp(json_string_value(json_object_get(x, "address")),
	                  json_string_value(json_object_get(y, "address")));
}

json_t *dns_svc_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"source", MG_FIELD_STRING, 0, 1, 16}, {0}};
	struct dns *d = ctx->self;
	json_t *r, *addrs, *a;
	size_t i, k;
	const char *name;
	(void)service;
	(void)arg;
	json_t *bad = mg_request_check(ctx, request, fields);
	if (bad)
		return bad;
	const char *only = json_string_value(json_object_get(request, "source"));
	if (only && strcmp(only, "config") && strcmp(only, "runtime") && strcmp(only, "device"))
		return mg_field_error("source", "'source' is config, runtime or device");
	json_t *list = json_array();
	if (!only || !strcmp(only, "config")) {
		json_array_foreach(d->cfg.records, i, r)
		{
			list_add(list, d, json_string_value(json_object_get(r, "name")),
			         json_string_value(json_object_get(r, "address")), "config");
		}
	}
	if (!only || !strcmp(only, "runtime")) {
		json_object_foreach(d->runtime, name, addrs)
		{
			json_array_foreach(addrs, k, a)
			{
				list_add(list, d, name, json_string_value(a), "runtime");
			}
		}
	}
	if (!only || !strcmp(only, "device"))
		dns_names_foreach(d->devices, list_device, &(struct listing){d, list});
	/* sorted by name for people and for diffs */
	size_t count = json_array_size(list);
	json_t **items = malloc((count ? count : 1) * sizeof(*items));
	for (i = 0; items && i < count; i++)
		items[i] = json_incref(json_array_get(list, i));
	if (items) {
		qsort(items, count, sizeof(*items), by_name);
		json_array_clear(list);
		for (i = 0; i < count; i++)
			json_array_append_new(list, items[i]);
		free(items);
	}
	return json_pack("{s:s, s:o}", "zone", d->cfg.zone_text, "records", list);
}

json_t *dns_svc_stats(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct dns *d = ctx->self;
	struct dns_counters *c = &d->srv.count;
	(void)service;
	(void)arg;
	json_t *bad = mg_request_check(ctx, request, fields);
	if (bad)
		return bad;
	json_t *listen = json_array(), *upstream = json_array();
	for (size_t i = 0; i < d->nlisteners; i++) {
		char text[96];
		dns_sockaddr_text((struct sockaddr *)&d->listeners[i]->addr, text, sizeof(text));
		json_array_append_new(listen, json_string(text));
	}
	for (size_t i = 0; i < d->cfg.nupstream; i++) {
		char text[96];
		dns_sockaddr_text((struct sockaddr *)&d->cfg.upstream[i], text, sizeof(text));
		json_array_append_new(upstream, json_string(text));
	}
	json_t *reply = json_pack("{s:s, s:o, s:o, s:I, s:I, s:I, s:I}", "zone", d->cfg.zone_text,
	                          "listen", listen, "upstream", upstream, "names",
	                          (json_int_t)dns_index_names(d->srv.index), "devices",
	                          (json_int_t)dns_names_devices(d->devices), "serial",
	                          (json_int_t)d->serial, "pending", (json_int_t)dns_fwd_pending(d));
	const struct {
		const char *name;
		_Atomic uint64_t *value;
	} counters[] = {
	    {"queries_udp", &c->udp},
	    {"queries_tcp", &c->tcp},
	    {"answered", &c->answered},
	    {"nxdomain", &c->nxdomain},
	    {"forwarded", &c->forwarded},
	    {"servfail", &c->servfail},
	    {"refused_sources", &c->refused_source},
	    {"formerr", &c->formerr},
	    {"truncated", &c->truncated},
	    {"dropped", &c->dropped},
	    {"upstream_timeouts", &c->upstream_timeouts},
	};
	for (size_t i = 0; reply && i < sizeof(counters) / sizeof(counters[0]); i++)
		json_object_set_new(reply, counters[i].name,
		                    json_integer((json_int_t)atomic_load_explicit(
		                        counters[i].value, memory_order_relaxed)));
	return reply;
}

/* dns.metrics: the same counters as dns.stats, as Prometheus families. */
json_t *dns_svc_metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct dns *d = ctx->self;
	struct dns_counters *c = &d->srv.count;
	(void)service;
	(void)arg;
	json_t *bad = mg_request_check(ctx, request, fields);
	if (bad)
		return bad;
	json_t *families = json_array();
	json_t *queries = metrics_family(families, "meshgate_dns_queries_total", "counter",
	                                 "DNS queries received, by transport");
	metrics_sample(queries, json_pack("{s:s}", "transport", "udp"),
	               (double)atomic_load_explicit(&c->udp, memory_order_relaxed));
	metrics_sample(queries, json_pack("{s:s}", "transport", "tcp"),
	               (double)atomic_load_explicit(&c->tcp, memory_order_relaxed));
	const struct {
		const char *name, *help;
		_Atomic uint64_t *value;
	} counters[] = {
	    {"meshgate_dns_answers_total",
	     "Queries the gateway answered itself (its zone, device names; NXDOMAIN and FORMERR "
	     "included)",
	     &c->answered},
	    {"meshgate_dns_nxdomain_total", "Answers of the gateway's own that were NXDOMAIN",
	     &c->nxdomain},
	    {"meshgate_dns_formerr_total", "Malformed queries answered FORMERR", &c->formerr},
	    {"meshgate_dns_forwarded_total", "Queries forwarded to an upstream server",
	     &c->forwarded},
	    {"meshgate_dns_servfail_total",
	     "Forwarded queries answered SERVFAIL (no upstream answer)", &c->servfail},
	    {"meshgate_dns_upstream_timeouts_total",
	     "Forwarded queries an upstream did not answer in time", &c->upstream_timeouts},
	    {"meshgate_dns_refused_sources_total",
	     "Queries from sources outside the allowed networks", &c->refused_source},
	    {"meshgate_dns_truncated_total", "UDP answers cut short (TC set)", &c->truncated},
	    {"meshgate_dns_dropped_total", "Queries dropped unanswered (garbage, full queues)",
	     &c->dropped},
	};
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		metrics_sample(
		    metrics_family(families, counters[i].name, "counter", counters[i].help), NULL,
		    (double)atomic_load_explicit(counters[i].value, memory_order_relaxed));
	metrics_sample(metrics_family(families, "meshgate_dns_names", "gauge",
	                              "Names the gateway answers for"),
	               NULL, (double)dns_index_names(d->srv.index));
	return metrics_reply(families);
}
