/* A descriptor of a future ABI: the core must refuse it without calling it. */
#include <meshgate/meshgate.h>

__attribute__((visibility("default"))) const struct mg_plugin mg_plugin_descriptor = {
    .abi_major = MG_ABI_MAJOR + 1,
    .abi_minor = 0,
    .size = sizeof(struct mg_plugin),
    .ptr_size = sizeof(void *),
    .time_size = sizeof(time_t),
    .long_size = sizeof(long),
    .build_signature = MG_BUILD_SIGNATURE,
    .name = "badabi",
    .version = "9.9",
};
