/* Config: libconfig files validated against declared settings.
 *
 * The core's own settings and every plugin's section are declared as
 * struct mg_setting arrays; validation names file, line and setting of the
 * first error, and an unknown setting is an error. A validated section is
 * handed to its owner as a JSON object with every default filled in. */
#ifndef MG_CORE_CONFIG_H
#define MG_CORE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>
#include <libconfig.h>

#include <meshgate/plugin.h>

/* The core's settings: state_dir, socket, plugin_dir, plugins, log_level, ... */
extern const struct mg_setting mg_core_settings[];

/* Reads FILE (syntax only). On error returns NULL with "FILE:LINE: text". */
config_t *mg_config_read(const char *path, char *err, size_t errlen);
void mg_config_free(config_t *cfg);

/* Validates `group` (NULL: absent, all defaults) against `schema` and
 * returns it as JSON with the defaults filled in. `section` names it in
 * messages ("wireguard"; "" for the top level). NULL with "FILE:LINE:
 * message" in err on the first error. */
json_t *mg_config_section(const config_setting_t *group, const struct mg_setting *schema,
                          const char *section, char *err, size_t errlen);

/* Like mg_config_section for the top level, but members `schema` does not
 * declare are skipped: the core reads its own settings with it before it
 * knows its plugins' declarations. */
json_t *mg_config_known(const config_setting_t *group, const struct mg_setting *schema, char *err,
                        size_t errlen);

/* Validates a section given as a JSON object (NULL: absent) exactly as if
 * it were written in the config file: the same checks, defaults and
 * messages, without "FILE:LINE: ". The mock core configures plugins with
 * it, so a config meshgated refuses fails a unit test too. */
json_t *mg_config_section_json(json_t *section, const struct mg_setting *schema, const char *name,
                               char *err, size_t errlen);

/* The defaults of `schema` alone, for a plugin run without a config (the
 * mock core uses it too). */
json_t *mg_config_defaults(const struct mg_setting *schema, char *err, size_t errlen);

/* The reference of `schema`, one text for every place it is read:
 * Markdown (docs/config.md), roff (meshgated.conf(5)) or a config file
 * with every setting commented out at its default (the packages'
 * /etc/meshgate/meshgated.conf). */
enum mg_doc_format { MG_DOC_MARKDOWN, MG_DOC_MAN, MG_DOC_SAMPLE };
void mg_config_doc(FILE *out, enum mg_doc_format format, const char *section, const char *title,
                   const struct mg_setting *schema);

#endif
