#include "config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define B64_KEY_LEN 45 /* 44 characters and the NUL */

void cl_profile_from_reply(struct cl_profile *p, const char *server_url,
                           const struct cl_redeem_reply *r, const uint8_t private_key[CL_KEY_LEN])
{
	memset(p, 0, sizeof(*p));
	snprintf(p->server_url, sizeof(p->server_url), "%s", server_url ? server_url : "");
	memcpy(p->device_id, r->device_id, sizeof(p->device_id));
	memcpy(p->register_token, r->register_token, sizeof(p->register_token));
	memcpy(p->private_key, private_key, CL_KEY_LEN);
	p->address = r->address;
	memcpy(p->dns, r->dns, sizeof(p->dns));
	p->n_dns = r->n_dns;
	memcpy(p->server_public_key, r->server_public_key, CL_KEY_LEN);
	p->endpoint = r->endpoint;
	memcpy(p->allowed_ips, r->allowed_ips, sizeof(p->allowed_ips));
	p->n_allowed_ips = r->n_allowed_ips;
	p->keepalive = r->keepalive;
	memcpy(p->vpn_api, r->vpn_api, sizeof(p->vpn_api));
	p->nodes = r->nodes;
}

static void write_prefixes(FILE *f, const struct cl_prefix *list, size_t n)
{
	char text[CL_PREFIX_STRLEN];
	for (size_t i = 0; i < n; i++) {
		cl_prefix_format(&list[i], text, sizeof(text));
		fprintf(f, "%s%s", i ? ", " : "", text);
	}
	fputc('\n', f);
}

static bool routes_everything(const struct cl_profile *p)
{
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (p->allowed_ips[i].family == AF_INET && p->allowed_ips[i].len == 0)
			return true;
	return false;
}

static void render_to(FILE *f, const struct cl_profile *p, bool with_meta)
{
	char key[B64_KEY_LEN], endpoint[CL_ENDPOINT_STRLEN];

	if (with_meta) {
		fprintf(f, "# meshgate device config. It holds this device's private key: keep it "
		           "private (mode 0600).\n");
		if (*p->server_url)
			fprintf(f, "# MeshgateServer = %s\n", p->server_url);
		if (*p->device_id)
			fprintf(f, "# MeshgateDeviceId = %s\n", p->device_id);
		if (*p->register_token)
			fprintf(f, "# MeshgateToken = %s\n", p->register_token);
		if (*p->vpn_api)
			fprintf(f, "# MeshgateVpnApi = %s\n", p->vpn_api);
		if (*p->pin)
			fprintf(f, "# MeshgatePin = %s\n", p->pin);
		if (*p->ca_file)
			fprintf(f, "# MeshgateCA = %s\n", p->ca_file);
		for (size_t i = 0; i < p->nodes.n_gateways; i++) {
			const struct cl_gateway *g = &p->nodes.gateways[i];
			sodium_bin2base64(key, sizeof(key), g->public_key, CL_KEY_LEN,
			                  sodium_base64_VARIANT_ORIGINAL);
			cl_endpoint_format(&g->endpoint, endpoint, sizeof(endpoint));
			fprintf(f, "# MeshgateGateway = %s %s %s", g->name, key, endpoint);
			for (size_t j = 1; j < g->n_endpoints; j++) {
				cl_endpoint_format(&g->endpoints[j], endpoint, sizeof(endpoint));
				fprintf(f, " %s", endpoint);
			}
			fputc('\n', f);
		}
		if (p->nodes.has_probe) {
			cl_endpoint_format(&p->nodes.probe, endpoint, sizeof(endpoint));
			fprintf(f, "# MeshgateProbe = %s\n", endpoint);
		}
		if (p->full_tunnel)
			fprintf(f, "# MeshgateFullTunnel = yes\n");
		if (p->kill_switch)
			fprintf(f, "# MeshgateKillSwitch = yes\n");
		if (p->nodes.pmtu_port)
			fprintf(f, "# MeshgatePmtuPort = %u\n", p->nodes.pmtu_port);
		if (p->has_next_key) {
			sodium_bin2base64(key, sizeof(key), p->next_private_key, CL_KEY_LEN,
			                  sodium_base64_VARIANT_ORIGINAL);
			fprintf(f, "# MeshgateNextKey = %s\n", key);
			sodium_memzero(key, sizeof(key));
		}
	}
	sodium_bin2base64(key, sizeof(key), p->private_key, CL_KEY_LEN,
	                  sodium_base64_VARIANT_ORIGINAL);
	fprintf(f, "[Interface]\nPrivateKey = %s\nAddress = ", key);
	sodium_memzero(key, sizeof(key));
	write_prefixes(f, &p->address, 1);
	for (size_t i = 0; i < p->n_dns; i++)
		fprintf(f, "%s%s%s", i ? ", " : "DNS = ", p->dns[i], i + 1 == p->n_dns ? "\n" : "");

	sodium_bin2base64(key, sizeof(key), p->server_public_key, CL_KEY_LEN,
	                  sodium_base64_VARIANT_ORIGINAL);
	cl_endpoint_format(&p->endpoint, endpoint, sizeof(endpoint));
	fprintf(f, "\n[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = ", key, endpoint);
	/* an exported full tunnel: wg-quick and the apps route everything */
	struct cl_prefix allowed[CL_MAX_ALLOWED_IPS + 1];
	size_t n = p->n_allowed_ips;
	memcpy(allowed, p->allowed_ips, n * sizeof(allowed[0]));
	if (!with_meta && p->full_tunnel && !routes_everything(p))
		allowed[n++] = (struct cl_prefix){.family = AF_INET};
	write_prefixes(f, allowed, n);
	if (p->keepalive)
		fprintf(f, "PersistentKeepalive = %u\n", p->keepalive);
}

char *cl_profile_render(const struct cl_profile *p, bool with_meta)
{
	/* Rendered into one fixed buffer, so no copy of the private key is
	 * left behind in memory that realloc gave back. */
	size_t size = 16384;
	char *buf = calloc(1, size);
	FILE *f = buf ? fmemopen(buf, size, "w") : NULL;
	if (!f) {
		free(buf);
		return NULL;
	}
	setvbuf(f, NULL, _IONBF, 0);
	render_to(f, p, with_meta);
	bool full = ferror(f) || ftell(f) >= (long)size - 1;
	fclose(f);
	if (full) {
		cl_profile_text_free(buf);
		return NULL;
	}
	return buf;
}

void cl_profile_text_free(char *text)
{
	if (text) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
}

/* ---- parsing ---- */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

static int parse_list(char *value, struct cl_prefix *list, size_t *n, size_t max)
{
	for (char *save = NULL, *item = strtok_r(value, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		if (*n == max || cl_prefix_parse(trim(item), false, &list[*n]))
			return -EINVAL;
		cl_prefix_mask(&list[(*n)++]);
	}
	return 0;
}

static int parse_dns(char *value, struct cl_profile *p)
{
	for (char *save = NULL, *item = strtok_r(value, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		struct cl_prefix ip;
		item = trim(item);
		if (p->n_dns == CL_MAX_DNS ||
		    (cl_prefix_parse(item, false, &ip) && !cl_hostname_valid(item)))
			return -EINVAL;
		snprintf(p->dns[p->n_dns++], CL_HOST_MAX, "%s", item);
	}
	return 0;
}

static int parse_uint16(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > 65535 || *s == '-')
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

enum section { SEC_NONE, SEC_INTERFACE, SEC_PEER, SEC_OTHER };

struct parse_state {
	enum section section;
	int peers;
	bool have_key, have_address, have_peer_key, have_endpoint;
};

/* "NAME KEY ENDPOINT [ENDPOINT...]": the node's best endpoint, then those
 * of its other uplinks */
static int parse_gateway(char *value, struct cl_nodes *nodes)
{
	char *save = NULL, *name = strtok_r(value, " \t", &save);
	char *key = strtok_r(NULL, " \t", &save), *endpoint = strtok_r(NULL, " \t", &save);
	if (nodes->n_gateways == CL_MAX_GATEWAYS || !endpoint || !cl_node_name_valid(name))
		return -EINVAL;
	struct cl_gateway *g = &nodes->gateways[nodes->n_gateways];
	snprintf(g->name, sizeof(g->name), "%s", name);
	if (cl_key_from_base64(key, g->public_key) || cl_endpoint_parse(endpoint, &g->endpoint))
		return -EINVAL;
	g->endpoints[0] = g->endpoint;
	g->n_endpoints = 1;
	while ((endpoint = strtok_r(NULL, " \t", &save))) {
		struct cl_endpoint e;
		if (g->n_endpoints == CL_MAX_ENDPOINTS || cl_endpoint_parse(endpoint, &e))
			return -EINVAL;
		cl_gateway_add_endpoint(g, &e);
	}
	nodes->n_gateways++;
	return 0;
}

static int parse_yes_no(const char *value, bool *out)
{
	if (strcmp(value, "yes") && strcmp(value, "no"))
		return -EINVAL;
	*out = !strcmp(value, "yes");
	return 0;
}

static int parse_meta(char *line, struct cl_profile *p)
{
	char *eq = strchr(line, '=');
	if (!eq)
		return 0;
	*eq = '\0';
	char *key = trim(line), *value = trim(eq + 1);
	if (!strcmp(key, "MeshgateServer"))
		snprintf(p->server_url, sizeof(p->server_url), "%s", value);
	else if (!strcmp(key, "MeshgateDeviceId"))
		snprintf(p->device_id, sizeof(p->device_id), "%s", value);
	else if (!strcmp(key, "MeshgateToken")) {
		if (strlen(value) >= sizeof(p->register_token))
			return -EINVAL;
		snprintf(p->register_token, sizeof(p->register_token), "%s", value);
	} else if (!strcmp(key, "MeshgateVpnApi")) {
		struct cl_endpoint e;
		if (cl_vpn_api_parse(value, &e) || strlen(value) >= sizeof(p->vpn_api))
			return -EINVAL;
		snprintf(p->vpn_api, sizeof(p->vpn_api), "%s", value);
	} else if (!strcmp(key, "MeshgatePin")) {
		if (!*value || strlen(value) >= sizeof(p->pin))
			return -EINVAL;
		snprintf(p->pin, sizeof(p->pin), "%s", value);
	} else if (!strcmp(key, "MeshgateGateway")) {
		return parse_gateway(value, &p->nodes);
	} else if (!strcmp(key, "MeshgateProbe")) {
		if (cl_endpoint_parse(value, &p->nodes.probe))
			return -EINVAL;
		p->nodes.has_probe = true;
	} else if (!strcmp(key, "MeshgateFullTunnel")) {
		return parse_yes_no(value, &p->full_tunnel);
	} else if (!strcmp(key, "MeshgateKillSwitch")) {
		return parse_yes_no(value, &p->kill_switch);
	} else if (!strcmp(key, "MeshgatePmtuPort")) {
		char *end;
		long port = strtol(value, &end, 10);
		if (end == value || *end || port < 1 || port > 65535)
			return -EINVAL;
		p->nodes.pmtu_port = (unsigned)port;
	} else if (!strcmp(key, "MeshgateNextKey")) {
		if (cl_key_from_base64(value, p->next_private_key))
			return -EINVAL;
		p->has_next_key = true;
	} else if (!strcmp(key, "MeshgateCA")) {
		if (!*value || strlen(value) >= sizeof(p->ca_file))
			return -EINVAL;
		snprintf(p->ca_file, sizeof(p->ca_file), "%s", value);
	}
	return 0;
}

static int parse_pair(struct parse_state *st, const char *key, char *value, struct cl_profile *p)
{
	if (st->section == SEC_INTERFACE) {
		if (!strcasecmp(key, "PrivateKey"))
			return st->have_key = true, cl_key_from_base64(value, p->private_key);
		if (!strcasecmp(key, "Address"))
			return st->have_address = true, cl_prefix_parse(value, true, &p->address);
		if (!strcasecmp(key, "DNS"))
			return parse_dns(value, p);
		return 0; /* ListenPort, MTU, ... : wg-quick's business */
	}
	if (st->section == SEC_PEER && st->peers == 1) {
		if (!strcasecmp(key, "PublicKey"))
			return st->have_peer_key = true,
			       cl_key_from_base64(value, p->server_public_key);
		if (!strcasecmp(key, "Endpoint"))
			return st->have_endpoint = true, cl_endpoint_parse(value, &p->endpoint);
		if (!strcasecmp(key, "AllowedIPs"))
			return parse_list(value, p->allowed_ips, &p->n_allowed_ips,
			                  CL_MAX_ALLOWED_IPS);
		if (!strcasecmp(key, "PersistentKeepalive"))
			return strcmp(value, "off") ? parse_uint16(value, &p->keepalive) : 0;
	}
	return 0;
}

static int parse_line(struct parse_state *st, char *line, struct cl_profile *p)
{
	line = trim(line);
	if (*line == '#')
		return parse_meta(line + 1, p);
	if (!*line)
		return 0;
	if (*line == '[') {
		if (!strcasecmp(line, "[Interface]"))
			st->section = SEC_INTERFACE;
		else if (!strcasecmp(line, "[Peer]"))
			st->section = SEC_PEER, st->peers++;
		else
			st->section = SEC_OTHER;
		return 0;
	}
	char *eq = strchr(line, '=');
	if (!eq)
		return -EINVAL;
	*eq = '\0';
	char *key = trim(line);
	return parse_pair(st, key, trim(eq + 1), p);
}

int cl_profile_parse(const char *text, struct cl_profile *p, struct cl_err *err)
{
	struct parse_state st = {0};
	char *copy = strdup(text);
	int lineno = 0, rc = 0;

	memset(p, 0, sizeof(*p));
	if (!copy)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	for (char *line = copy, *next; line && !rc; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (parse_line(&st, line, p))
			rc = cl_fail(err, CL_EXIT_FAILURE, "config line %d is not valid", lineno);
	}
	sodium_memzero(copy, strlen(text));
	free(copy);
	if (rc)
		return rc;
	if (!st.have_key || !st.have_address || st.peers != 1 || !st.have_peer_key ||
	    !st.have_endpoint || p->n_allowed_ips == 0)
		return cl_fail(err, CL_EXIT_FAILURE,
		               "config is incomplete (needs PrivateKey, Address and one [Peer] "
		               "with PublicKey, Endpoint, AllowedIPs)");
	return 0;
}

/* ---- files ---- */

int cl_make_dir(const char *dir, struct cl_err *err)
{
	char path[4096];
	size_t n = (size_t)snprintf(path, sizeof(path), "%s", dir);
	if (n >= sizeof(path))
		return cl_fail(err, CL_EXIT_FAILURE, "%s: path too long", dir);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) && errno != EEXIST)
			return cl_fail(err, CL_EXIT_FAILURE, "cannot create %s: %s", path,
			               strerror(errno));
		path[i] = c;
	}
	return 0;
}

int cl_write_private_file(const char *path, const char *text, struct cl_err *err)
{
	char tmp[4096];
	size_t len = strlen(text);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp))
		return cl_fail(err, CL_EXIT_FAILURE, "%s: path too long", path);
	/* mkstemp creates the file with mode 0600 whatever the umask. */
	int fd = mkstemp(tmp);
	if (fd < 0)
		return cl_fail(err, CL_EXIT_FAILURE, "cannot write %s: %s", path, strerror(errno));
	const char *at = text;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, at, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		at += n;
		left -= (size_t)n;
	}
	int saved = left ? errno : 0;
	if (!left && (fchmod(fd, 0600) || fsync(fd)))
		saved = errno;
	if (close(fd) && !saved)
		saved = errno;
	if (!saved && rename(tmp, path))
		saved = errno;
	if (saved) {
		unlink(tmp);
		return cl_fail(err, CL_EXIT_FAILURE, "cannot write %s: %s", path,
		               strerror(saved ? saved : EIO));
	}
	return 0;
}

int cl_profile_path(const char *dir, const char *ifname, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s.conf", dir, ifname);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int cl_profile_ca_path(const char *dir, const char *ifname, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s.ca.pem", dir, ifname);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int cl_profile_save(const char *path, const struct cl_profile *p, struct cl_err *err)
{
	char *text = cl_profile_render(p, true);
	if (!text)
		return cl_fail(err, CL_EXIT_FAILURE, "cannot render the config");
	int rc = cl_write_private_file(path, text, err);
	cl_profile_text_free(text);
	return rc;
}

int cl_profile_load(const char *path, struct cl_profile *p, struct cl_err *err)
{
	char buf[16384];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cl_fail(err, errno == ENOENT ? CL_EXIT_NOT_FOUND : CL_EXIT_FAILURE,
		               "cannot read %s: %s", path, strerror(errno));
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	int rc = cl_profile_parse(buf, p, err);
	if (rc && err->exit_code == CL_EXIT_FAILURE) {
		char msg[sizeof(err->msg)];
		snprintf(msg, sizeof(msg), "%s: %s", path, err->msg);
		memcpy(err->msg, msg, sizeof(msg));
	}
	sodium_memzero(buf, sizeof(buf));
	return rc;
}
