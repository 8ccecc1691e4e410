/* meshgate plugin ABI: the one descriptor a plugin exports.
 *
 * A plugin is meshgate-<name>.so exporting the symbol `mg_plugin_descriptor`,
 * declared with MG_PLUGIN(...). The core checks the ABI major and minor, the
 * descriptor size and the build signature before it calls anything, and
 * refuses the file with a message naming it and the reason otherwise. */
#ifndef MESHGATE_PLUGIN_H
#define MESHGATE_PLUGIN_H

#include <stdint.h>
#include <time.h>

#include <meshgate/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Major changes break plugins; minor changes only append (to this
 * descriptor or to struct mg_api). meshgated refuses a plugin of another
 * major, or of a newer minor than its own: such a plugin may call members
 * this core does not have. Minor 1: API version 3; minor 2: API version 4;
 * minor 3: API version 5 (see MG_API_HAS); minor 4: the descriptor's
 * `cluster` and API version 6. */
#define MG_ABI_MAJOR 1
#define MG_ABI_MINOR 4

#define MG_PLUGIN_SYMBOL "mg_plugin_descriptor"

typedef struct mg_ctx mg_ctx;

/* Types of a plugin's config settings (its section of the config file). */
enum mg_setting_type {
	MG_SETTING_STRING = 1,
	MG_SETTING_INT,
	MG_SETTING_BOOL,
	MG_SETTING_STRINGS, /* array or list of strings: ["a", "b"] */
	MG_SETTING_MAP,     /* group of arbitrary names, each of type fields[0] */
	MG_SETTING_LIST,    /* list of groups: ( { ... }, { ... } ), each by fields */
	MG_SETTING_GROUP,   /* group with the named settings of fields */
};

/* One declared setting. `default_value` is written in libconfig syntax
 * ("\"10.0.0.1/24\"", "51820", "true", "[\"a\"]"); NULL means no default.
 * The core validates the section against these declarations, fills in the
 * defaults and hands the plugin the result as one JSON object. */
struct mg_setting {
	const char *name;
	enum mg_setting_type type;
	const char *default_value;
	const char *doc;
	const struct mg_setting *fields; /* MG_SETTING_MAP / MG_SETTING_LIST; ends with {0} */
	int required;
};

/* The descriptor. Fields are only ever appended (guarded by `size` and
 * the minor version); `reserved` keeps room so that appending rarely
 * changes the size. */
struct mg_plugin {
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size;
	uint8_t ptr_size;
	uint8_t time_size;
	uint8_t long_size;
	uint8_t reserved0;
	const char *build_signature; /* MG_BUILD_SIGNATURE of the SDK it was built with */

	const char *name;
	const char *version;
	const char *description;
	const char *const *provides;       /* features besides its name, NULL-terminated */
	const char *const *depends;        /* plugin names or features, NULL-terminated */
	const char *const *owns;           /* state databases this plugin writes */
	const struct mg_setting *settings; /* ends with {0} */

	/* Lifecycle, each called on the plugin's own thread. init registers
	 * services, subscriptions and timers; start runs once every plugin is
	 * initialised; stop undoes start. Return 0 or a negative errno. */
	int (*init)(mg_ctx *ctx);
	int (*start)(mg_ctx *ctx);
	int (*reload)(mg_ctx *ctx); /* config changed (SIGHUP) */
	void (*stop)(mg_ctx *ctx);

	/* Which of `owns` are shared by every node of a cluster (users,
	 * devices, policy...: kept in etcd, mirrored on each node); the others
	 * stay on the node (its sealed keys, its runtime data). Without a
	 * cluster every database is the node's. (ABI minor 4; appended in
	 * place of a reserved slot, so older plugins read NULL here.) */
	const char *const *cluster;

	void *reserved[7];
};

/* Declares the plugin's descriptor: MG_PLUGIN(.name = "hello", ...); */
#define MG_PLUGIN(...)                                                                        \
	extern const struct mg_plugin mg_plugin_descriptor;                                   \
	__attribute__((visibility("default")))                                                \
	const struct mg_plugin mg_plugin_descriptor = {.abi_major = MG_ABI_MAJOR,             \
	                                               .abi_minor = MG_ABI_MINOR,             \
	                                               .size = sizeof(struct mg_plugin),      \
	                                               .ptr_size = sizeof(void *),            \
	                                               .time_size = sizeof(time_t),           \
	                                               .long_size = sizeof(long),             \
	                                               .build_signature = MG_BUILD_SIGNATURE, \
	                                               __VA_ARGS__}

#ifdef __cplusplus
}
#endif
#endif
