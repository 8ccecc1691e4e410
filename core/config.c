#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mg_setting cluster_settings[] = {
    {"node", MG_SETTING_STRING, NULL,
     "This node's name in the cluster (required there): unique, stable (letters, digits, "
     "'-', '.').",
     NULL, 0},
    {"etcd", MG_SETTING_STRINGS, NULL,
     "etcd's client URLs, e.g. [\"https://10.0.0.2:2379\", ...]; http only on loopback or a "
     "network of its own (required in a cluster).",
     NULL, 0},
    {"prefix", MG_SETTING_STRING, "\"/meshgate/\"",
     "Where the cluster's keys live in etcd: every node of one cluster gives the same prefix.",
     NULL, 0},
    {"ca", MG_SETTING_STRING, NULL, "https: the CA file that signed etcd's certificates.", NULL, 0},
    {"cert", MG_SETTING_STRING, NULL, "https: this node's client certificate for etcd.", NULL, 0},
    {"key", MG_SETTING_STRING, NULL,
     "https: the key of `cert` (a 0600 file). Moved into the secret service (the secret "
     "core/etcd-client-key, kept by the `secrets` back end) at the first start that finds the "
     "file, and the file removed: a new file (a renewal) is put anew at the next start.",
     NULL, 0},
    {"timeout_ms", MG_SETTING_INT, "2000",
     "How long a write waits for etcd before it fails with \"unavailable\".", NULL, 0},
    {"max_txn_ops", MG_SETTING_INT, "128",
     "etcd's --max-txn-ops (16..100000): the most keys one write compares or changes. A group "
     "commit larger than that is committed in parts.",
     NULL, 0},
    {0},
};

const struct mg_setting mg_core_settings[] = {
    {"state_dir", MG_SETTING_STRING, "\"/var/lib/meshgate\"",
     "Directory of the node's state (LMDB environment, keys, certificates).", NULL, 0},
    {"socket", MG_SETTING_STRING, "\"/run/meshgate/meshgate.sock\"",
     "Path of the local bus socket (ipc, mode 0660) used by meshgatectl and out-of-process "
     "plugins.",
     NULL, 0},
    {"plugin_dir", MG_SETTING_STRING, NULL,
     "Directory of the plugins (meshgate-NAME.so). Default: the install's "
     "lib/meshgate/plugins.",
     NULL, 0},
    {"plugins", MG_SETTING_STRINGS, NULL,
     "Names of the plugins to load, in any order (they start in dependency order). Default: "
     "every plugin in plugin_dir.",
     NULL, 0},
    {"secrets", MG_SETTING_STRING, "\"local\"",
     "Where the node's private keys live, behind the secret.* services: \"local\" (sealed "
     "on this node by the keystore plugin) or \"vault\" (HashiCorp Vault, by the vault "
     "plugin: docs/vault.md). The chosen back end's plugin is loaded as soon as a plugin "
     "depends on \"secrets\", listed in `plugins` or not; the other is not loaded.",
     NULL, 0},
    {"log_level", MG_SETTING_STRING, "\"info\"", "error, warn, info or debug.", NULL, 0},
    {"plugin_errors", MG_SETTING_STRING, "\"stop\"",
     "What a refused or failing plugin does to the start: \"stop\" (meshgated exits) or "
     "\"continue\" (the others start without it).",
     NULL, 0},
    {"state_map_mb", MG_SETTING_INT, "1024", "Largest size of the state database, in MiB.", NULL,
     0},
    {"cluster", MG_SETTING_GROUP, NULL,
     "Makes this node one of a cluster sharing its state through etcd (docs/cluster.md). "
     "Without it the node runs alone on its LMDB.",
     cluster_settings, 0},
    {0},
};

/* Settings that moved to another section; a config written for an older
 * meshgate keeps working. The sealing key went with the sealing itself,
 * from each plugin that sealed its key to the local secret store. */
static const struct {
	const char *from, *to;
} moved_settings[] = {
    {"wireguard.seal_key_file", "keystore.seal_key_file"},
    {"mesh.seal_key_file", "keystore.seal_key_file"},
};

static config_setting_t *group_of(config_t *cfg, const char *name)
{
	config_setting_t *g = config_lookup(cfg, name);
	if (!g)
		g = config_setting_add(config_root_setting(cfg), name, CONFIG_TYPE_GROUP);
	return g && config_setting_is_group(g) ? g : NULL;
}

/* Moves each old name's value to its new one: -EINVAL when both are set
 * to different values (which one would be meant is unknowable). */
static int move_settings(config_t *cfg, const char *path, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(moved_settings) / sizeof(moved_settings[0]); i++) {
		const char *from = moved_settings[i].from, *to = moved_settings[i].to;
		config_setting_t *old = config_lookup(cfg, from);
		const char *value = old ? config_setting_get_string(old) : NULL;
		if (!value)
			continue; /* absent, or of the wrong type: its section says so */
		const char *now = NULL;
		if (config_lookup_string(cfg, to, &now) == CONFIG_TRUE) {
			if (strcmp(now, value)) {
				snprintf(err, errlen,
				         "%s: %s (\"%s\") moved to %s, which says \"%s\"", path,
				         from, value, to, now);
				return -EINVAL;
			}
		} else {
			char section[64];
			snprintf(section, sizeof(section), "%.*s", (int)(strchr(to, '.') - to), to);
			config_setting_t *g = group_of(cfg, section);
			config_setting_t *s =
			    g ? config_setting_add(g, strchr(to, '.') + 1, CONFIG_TYPE_STRING)
			      : NULL;
			if (!s || config_setting_set_string(s, value) != CONFIG_TRUE) {
				snprintf(err, errlen, "%s: cannot move %s to %s", path, from, to);
				return -EINVAL;
			}
		}
		fprintf(stderr, "meshgated: %s: %s is now %s (read from there)\n", path, from, to);
		config_setting_remove(config_setting_parent(old), config_setting_name(old));
	}
	return 0;
}

config_t *mg_config_read(const char *path, char *err, size_t errlen)
{
	config_t *cfg = malloc(sizeof(*cfg));
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	config_init(cfg);
	if (config_read_file(cfg, path) == CONFIG_TRUE) {
		if (!move_settings(cfg, path, err, errlen))
			return cfg;
		mg_config_free(cfg);
		return NULL;
	}
	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
	else
		snprintf(err, errlen, "%s:%d: %s",
		         config_error_file(cfg) ? config_error_file(cfg) : path,
		         config_error_line(cfg), config_error_text(cfg));
	mg_config_free(cfg);
	return NULL;
}

void mg_config_free(config_t *cfg)
{
	if (!cfg)
		return;
	config_destroy(cfg);
	free(cfg);
}

static const char *type_name(enum mg_setting_type type)
{
	switch (type) {
	case MG_SETTING_STRING:
		return "a string";
	case MG_SETTING_INT:
		return "an integer";
	case MG_SETTING_BOOL:
		return "a boolean";
	case MG_SETTING_STRINGS:
		return "a list of strings";
	case MG_SETTING_MAP:
		return "a group of named values";
	case MG_SETTING_LIST:
		return "a list of groups";
	case MG_SETTING_GROUP:
		return "a group";
	}
	return "?";
}

/* "FILE:LINE: " of a setting, for messages. */
static void where(const config_setting_t *s, char *buf, size_t len)
{
	const char *file = s ? config_setting_source_file(s) : NULL;
	if (file)
		snprintf(buf, len, "%s:%u: ", file, config_setting_source_line(s));
	else
		snprintf(buf, len, "%s", "");
}

static json_t *convert(const config_setting_t *s, const struct mg_setting *decl, const char *path,
                       char *err, size_t errlen);

static json_t *type_error(const config_setting_t *s, const struct mg_setting *decl,
                          const char *path, char *err, size_t errlen)
{
	char at[512];
	where(s, at, sizeof(at));
	snprintf(err, errlen, "%ssetting '%s' must be %s", at, path, type_name(decl->type));
	return NULL;
}

static void join_path(char *out, size_t len, const char *section, const char *name)
{
	if (section && section[0])
		snprintf(out, len, "%s.%s", section, name);
	else
		snprintf(out, len, "%s", name);
}

static json_t *convert_group(const config_setting_t *group, const struct mg_setting *schema,
                             const char *section, int skip_unknown, char *err, size_t errlen);

static json_t *convert_elements(const config_setting_t *s, const struct mg_setting *item,
                                const char *path, char *err, size_t errlen)
{
	json_t *out = json_array();
	for (int i = 0; i < config_setting_length(s); i++) {
		char sub[512];
		snprintf(sub, sizeof(sub), "%s[%d]", path, i);
		json_t *v =
		    convert(config_setting_get_elem(s, (unsigned)i), item, sub, err, errlen);
		if (!v) {
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, v);
	}
	return out;
}

static json_t *convert(const config_setting_t *s, const struct mg_setting *decl, const char *path,
                       char *err, size_t errlen)
{
	int type = config_setting_type(s);
	static const struct mg_setting string_item = {"", MG_SETTING_STRING, NULL, NULL, NULL, 0};

	switch (decl->type) {
	case MG_SETTING_STRING:
		if (type != CONFIG_TYPE_STRING)
			return type_error(s, decl, path, err, errlen);
		return json_string(config_setting_get_string(s));
	case MG_SETTING_INT:
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
			return type_error(s, decl, path, err, errlen);
		return json_integer(config_setting_get_int64(s));
	case MG_SETTING_BOOL:
		if (type != CONFIG_TYPE_BOOL)
			return type_error(s, decl, path, err, errlen);
		return json_boolean(config_setting_get_bool(s));
	case MG_SETTING_STRINGS:
		if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
			return type_error(s, decl, path, err, errlen);
		return convert_elements(s, &string_item, path, err, errlen);
	case MG_SETTING_LIST: {
		if (type != CONFIG_TYPE_LIST)
			return type_error(s, decl, path, err, errlen);
		struct mg_setting item = {"", MG_SETTING_GROUP, NULL, NULL, decl->fields, 0};
		return convert_elements(s, &item, path, err, errlen);
	}
	case MG_SETTING_MAP: {
		if (type != CONFIG_TYPE_GROUP)
			return type_error(s, decl, path, err, errlen);
		json_t *out = json_object();
		for (int i = 0; i < config_setting_length(s); i++) {
			const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
			char sub[512];
			join_path(sub, sizeof(sub), path, config_setting_name(m));
			json_t *v = convert(m, &decl->fields[0], sub, err, errlen);
			if (!v) {
				json_decref(out);
				return NULL;
			}
			json_object_set_new(out, config_setting_name(m), v);
		}
		return out;
	}
	case MG_SETTING_GROUP:
		if (type != CONFIG_TYPE_GROUP)
			return type_error(s, decl, path, err, errlen);
		if (!decl->fields)
			return json_object(); /* a section nobody validates (refused plugin) */
		return convert_group(s, decl->fields, path, 0, err, errlen);
	}
	return type_error(s, decl, path, err, errlen);
}

/* A declared default, parsed with libconfig as if it were written in a file. */
static json_t *parse_default(const struct mg_setting *decl, const char *path, char *err,
                             size_t errlen)
{
	config_t tmp;
	char text[2048];
	json_t *v = NULL;

	if (decl->type == MG_SETTING_GROUP)
		return convert_group(NULL, decl->fields, path, 0, err, errlen);
	if (!decl->default_value)
		return NULL;
	snprintf(text, sizeof(text), "value = %s;", decl->default_value);
	config_init(&tmp);
	if (config_read_string(&tmp, text) == CONFIG_TRUE)
		v = convert(config_lookup(&tmp, "value"), decl, path, err, errlen);
	else
		snprintf(err, errlen, "default of '%s' does not parse: %s", path,
		         config_error_text(&tmp));
	config_destroy(&tmp);
	return v;
}

static const struct mg_setting *find_decl(const struct mg_setting *schema, const char *name)
{
	for (const struct mg_setting *d = schema; d && d->name; d++)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

static json_t *convert_group(const config_setting_t *group, const struct mg_setting *schema,
                             const char *section, int skip_unknown, char *err, size_t errlen)
{
	json_t *out = json_object();
	char path[512], at[512];

	for (int i = 0; group && i < config_setting_length(group); i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const struct mg_setting *decl = find_decl(schema, config_setting_name(m));
		join_path(path, sizeof(path), section, config_setting_name(m));
		if (!decl && skip_unknown)
			continue;
		if (!decl) {
			where(m, at, sizeof(at));
			snprintf(err, errlen, "%sunknown setting '%s'", at, path);
			goto fail;
		}
		json_t *v = convert(m, decl, path, err, errlen);
		if (!v)
			goto fail;
		json_object_set_new(out, decl->name, v);
	}
	for (const struct mg_setting *d = schema; d && d->name; d++) {
		if (json_object_get(out, d->name))
			continue;
		join_path(path, sizeof(path), section, d->name);
		if (d->required) {
			where(group, at, sizeof(at));
			snprintf(err, errlen, "%smissing required setting '%s'", at, path);
			goto fail;
		}
		err[0] = '\0';
		json_t *v = parse_default(d, path, err, errlen);
		if (v)
			json_object_set_new(out, d->name, v);
		else if (err[0])
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

json_t *mg_config_section(const config_setting_t *group, const struct mg_setting *schema,
                          const char *section, char *err, size_t errlen)
{
	if (group && config_setting_type(group) != CONFIG_TYPE_GROUP) {
		char at[512];
		where(group, at, sizeof(at));
		snprintf(err, errlen, "%ssetting '%s' must be a group", at, section);
		return NULL;
	}
	return convert_group(group, schema, section, 0, err, errlen);
}

json_t *mg_config_known(const config_setting_t *group, const struct mg_setting *schema, char *err,
                        size_t errlen)
{
	return convert_group(group, schema, "", 1, err, errlen);
}

/* Writes `value` into the libconfig tree as member `name` of `parent`
 * (NULL name: an element of a list). Arrays become lists, which every
 * declared list type accepts. */
static int json_to_setting(config_setting_t *parent, const char *name, json_t *value,
                           const char *path, char *err, size_t errlen)
{
	config_setting_t *s = NULL;
	switch (json_typeof(value)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *member;
		if (!(s = config_setting_add(parent, name, CONFIG_TYPE_GROUP)))
			break;
		json_object_foreach(value, key, member)
		{
			char sub[512];
			join_path(sub, sizeof(sub), path, key);
			if (json_to_setting(s, key, member, sub, err, errlen))
				return -1;
		}
		return 0;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *element;
		if (!(s = config_setting_add(parent, name, CONFIG_TYPE_LIST)))
			break;
		json_array_foreach(value, i, element)
		{
			char sub[512];
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (json_to_setting(s, NULL, element, sub, err, errlen))
				return -1;
		}
		return 0;
	}
	case JSON_STRING:
		if ((s = config_setting_add(parent, name, CONFIG_TYPE_STRING)))
			config_setting_set_string(s, json_string_value(value));
		break;
	case JSON_INTEGER:
		if ((s = config_setting_add(parent, name, CONFIG_TYPE_INT64)))
			config_setting_set_int64(s, json_integer_value(value));
		break;
	case JSON_REAL:
		if ((s = config_setting_add(parent, name, CONFIG_TYPE_FLOAT)))
			config_setting_set_float(s, json_real_value(value));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		if ((s = config_setting_add(parent, name, CONFIG_TYPE_BOOL)))
			config_setting_set_bool(s, json_is_true(value));
		break;
	case JSON_NULL:
		snprintf(err, errlen, "setting '%s' is null, which a config file cannot say", path);
		return -1;
	}
	if (!s) {
		snprintf(err, errlen, "setting '%s' has a name a config file cannot say", path);
		return -1;
	}
	return 0;
}

json_t *mg_config_section_json(json_t *section, const struct mg_setting *schema, const char *name,
                               char *err, size_t errlen)
{
	config_t tmp;
	json_t *out = NULL;
	if (section && !json_is_object(section)) {
		snprintf(err, errlen, "setting '%s' must be a group", name);
		return NULL;
	}
	config_init(&tmp);
	config_setting_t *root = config_root_setting(&tmp);
	const char *key;
	json_t *member;
	int ok = 1;
	json_object_foreach(section, key, member)
	{
		char path[512];
		join_path(path, sizeof(path), name, key);
		if (json_to_setting(root, key, member, path, err, errlen)) {
			ok = 0;
			break;
		}
	}
	if (ok)
		out = mg_config_section(section ? root : NULL, schema, name, err, errlen);
	config_destroy(&tmp);
	return out;
}

json_t *mg_config_defaults(const struct mg_setting *schema, char *err, size_t errlen)
{
	return convert_group(NULL, schema, "", 0, err, errlen);
}

static void doc_rows(FILE *out, const char *prefix, const struct mg_setting *schema)
{
	for (const struct mg_setting *d = schema; d && d->name; d++) {
		char path[256];
		join_path(path, sizeof(path), prefix, d->name);
		fprintf(out, "| `%s` | %s | %s%s%s | %s%s |\n", path, type_name(d->type),
		        d->default_value ? "`" : "", d->default_value ? d->default_value : "—",
		        d->default_value ? "`" : "", d->required ? "**Required.** " : "",
		        d->doc ? d->doc : "");
		if (d->type == MG_SETTING_GROUP || d->type == MG_SETTING_LIST) {
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s",
			         d->type == MG_SETTING_LIST ? "[]" : "");
			doc_rows(out, path, d->fields);
		} else if (d->type == MG_SETTING_MAP) {
			snprintf(path + strlen(path), sizeof(path) - strlen(path), ".NAME");
			struct mg_setting item = d->fields[0];
			item.name = "";
			fprintf(out, "| `%s` | %s | | %s |\n", path, type_name(item.type),
			        item.doc ? item.doc : "");
		}
	}
}

/* roff: a backslash starts an escape, and a line that starts with a dot
 * or an apostrophe is a request. */
static void man_text(FILE *out, const char *text)
{
	int line_start = 1;
	for (const char *c = text ? text : ""; *c; c++) {
		if (line_start && (*c == '.' || *c == '\''))
			fputs("\\&", out);
		if (*c == '\\')
			fputs("\\e", out);
		else
			fputc(*c, out);
		line_start = *c == '\n';
	}
}

static void man_rows(FILE *out, const char *prefix, const struct mg_setting *schema)
{
	for (const struct mg_setting *d = schema; d && d->name; d++) {
		char path[256];
		join_path(path, sizeof(path), prefix, d->name);
		fprintf(out, ".TP\n.B ");
		man_text(out, path);
		fprintf(out, "\n%s", type_name(d->type));
		if (d->default_value) {
			fprintf(out, ", default ");
			man_text(out, d->default_value);
		}
		fprintf(out, "%s.\n", d->required ? ", required" : "");
		man_text(out, d->doc);
		fprintf(out, "\n");
		if (d->type == MG_SETTING_GROUP || d->type == MG_SETTING_LIST) {
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s",
			         d->type == MG_SETTING_LIST ? "[]" : "");
			man_rows(out, path, d->fields);
		}
	}
}

/* A comment of at most ~76 columns a line, after `indent`. */
static void sample_comment(FILE *out, const char *indent, const char *text)
{
	const char *p = text ? text : "";
	while (*p) {
		size_t len = strlen(p), cut = len;
		if (len > 72) {
			cut = 72;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = 72;
		}
		fprintf(out, "#%s# %.*s\n", indent, (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

static void sample_rows(FILE *out, const char *indent, const struct mg_setting *schema)
{
	for (const struct mg_setting *d = schema; d && d->name; d++) {
		sample_comment(out, indent, d->doc);
		if (d->type == MG_SETTING_GROUP) {
			char inner[16];
			snprintf(inner, sizeof(inner), "%s\t", indent);
			fprintf(out, "#%s%s = {\n", indent, d->name);
			sample_rows(out, inner, d->fields);
			fprintf(out, "#%s};\n", indent);
		} else if (d->default_value) {
			fprintf(out, "#%s%s = %s;\n", indent, d->name, d->default_value);
		} else {
			fprintf(out, "#%s# %s: %s%s, no default\n", indent, d->name,
			        type_name(d->type), d->required ? " (required in this group)" : "");
		}
	}
}

void mg_config_doc(FILE *out, enum mg_doc_format format, const char *section, const char *title,
                   const struct mg_setting *schema)
{
	switch (format) {
	case MG_DOC_MARKDOWN:
		fprintf(out, "## %s\n\n", title);
		if (section && section[0])
			fprintf(out, "Section `%s = { ... };`\n\n", section);
		fprintf(out, "| setting | type | default | meaning |\n|---|---|---|---|\n");
		doc_rows(out, section, schema);
		fprintf(out, "\n");
		break;
	case MG_DOC_MAN:
		fprintf(out, ".SS \"");
		man_text(out, title);
		fprintf(out, "\"\n");
		man_rows(out, section, schema);
		break;
	case MG_DOC_SAMPLE:
		fprintf(out, "\n# ===== %s =====\n", title);
		if (section && section[0]) {
			fprintf(out, "#%s = {\n", section);
			sample_rows(out, "\t", schema);
			fprintf(out, "#};\n");
		} else {
			sample_rows(out, "", schema);
		}
		break;
	}
}
