/* A shared object that is not a meshgate plugin. */
__attribute__((visibility("default"))) int not_a_plugin = 1;
