/* Built against a newer SDK of the same major: it may call members of
 * struct mg_api this core lacks, so the core must refuse it. */
#include <meshgate/meshgate.h>

__attribute__((visibility("default"))) const struct mg_plugin mg_plugin_descriptor = {
    .abi_major = MG_ABI_MAJOR,
    .abi_minor = MG_ABI_MINOR + 1,
    .size = sizeof(struct mg_plugin),
    .ptr_size = sizeof(void *),
    .time_size = sizeof(time_t),
    .long_size = sizeof(long),
    .build_signature = MG_BUILD_SIGNATURE,
    .name = "newminor",
    .version = "1.0",
};
