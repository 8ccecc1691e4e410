/* A plugin for the metrics test, built twice (CMakeLists.txt): "slowfigures"
 * answers its figures only after figures.delay_ms, "badfigures" answers a
 * family that is not well formed. Neither may spoil a scrape. */
#include <unistd.h>

#include <meshgate/meshgate.h>

#include "metrics.h"

#ifndef FIGURES_NAME
#define FIGURES_NAME "slowfigures"
#endif

static json_t *figures(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	json_t *config = mg_config(ctx), *families = json_array();
	(void)service;
	(void)request;
	(void)arg;
	usleep((useconds_t)json_integer_value(json_object_get(config, "delay_ms")) * 1000);
	const char *name = json_is_true(json_object_get(config, "malformed"))
	                       ? "meshgate_test_figures" /* a counter must end in _total */
	                       : "meshgate_test_figures_total";
	metrics_sample(metrics_family(families, name, "counter", "A test figure"), NULL, 1);
	return metrics_reply(families);
}

static int figures_init(mg_ctx *ctx)
{
	return mg_service_add(ctx, FIGURES_NAME ".metrics", figures, NULL);
}

static const struct mg_setting settings[] = {
    {"delay_ms", MG_SETTING_INT, "0", "Milliseconds before the figures are answered.", NULL, 0},
    {"malformed", MG_SETTING_BOOL, "false", "Answer a family that is not well formed.", NULL, 0},
    {0},
};

MG_PLUGIN(.name = FIGURES_NAME, .version = "1.0.0", .description = "figures for the metrics test",
          .settings = settings, .init = figures_init);
