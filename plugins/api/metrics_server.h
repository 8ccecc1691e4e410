/* The api plugin's /metrics listener: plain HTTP on api.metrics_listen,
 * a small MHD daemon of its own beside the device server. Each scrape asks
 * every running plugin (and the core) for its "<name>.metrics" at once,
 * waits at most the deadline, and renders what came (docs/metrics.md). */
#ifndef MG_API_METRICS_SERVER_H
#define MG_API_METRICS_SERVER_H

#include <meshgate/meshgate.h>

struct api_metrics;

/* Listens on `listen` ("ADDR:PORT", "[ADDR6]:PORT"); NULL with the reason
 * in why. timeout_ms: how long a scrape waits for the plugins. */
struct api_metrics *api_metrics_start(mg_ctx *ctx, const char *listen, int timeout_ms, char *why,
                                      size_t whylen);
/* Stops the listener and joins its thread (a scrape in progress ends first). */
void api_metrics_stop(struct api_metrics *m);

#endif
