/* Built "against other libraries": the signature differs. */
#include <meshgate/meshgate.h>

__attribute__((visibility("default"))) const struct mg_plugin mg_plugin_descriptor = {
    .abi_major = MG_ABI_MAJOR,
    .abi_minor = MG_ABI_MINOR,
    .size = sizeof(struct mg_plugin),
    .ptr_size = sizeof(void *),
    .time_size = sizeof(time_t),
    .long_size = sizeof(long),
    .build_signature = "mg1;zmq3;lmdb0.8;jansson1",
    .name = "badsig",
    .version = "1.0",
};
