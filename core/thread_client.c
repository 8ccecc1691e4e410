/* A bus client per thread, for requests and publishing: made on first use,
 * closed when its thread ends. Its own file so that the actors (which close
 * theirs before their thread returns) and the ops table (which hands them
 * out) both depend on it and not on each other. */
#include <pthread.h>
#include <stdio.h>

#include "bus_client.h"
#include "bus_proto.h"
#include "core.h"

static pthread_key_t client_key;
static pthread_once_t client_key_once = PTHREAD_ONCE_INIT;

static void close_client(void *client)
{
	mg_bus_client_free(client);
}
static void make_key(void)
{
	pthread_key_create(&client_key, close_client);
}

struct mg_bus_client *core_thread_client(struct core *core)
{
	pthread_once(&client_key_once, make_key);
	struct mg_bus_client *c = pthread_getspecific(client_key);
	if (!c && core->broker) {
		char err[256];
		c = mg_bus_client_new(core->zctx, core->inproc_endpoint, err, sizeof(err));
		if (!c)
			core_log(MG_LOG_ERROR, "bus", "%s", err);
		pthread_setspecific(client_key, c);
	}
	return c;
}

void core_thread_client_close(void)
{
	pthread_once(&client_key_once, make_key);
	mg_bus_client_free(pthread_getspecific(client_key));
	pthread_setspecific(client_key, NULL);
}

void core_publish_state_change(const char *db, const char *key, const char *op, void *arg)
{
	struct mg_bus_client *c = core_thread_client(arg);
	char topic[MG_BUS_MAX_NAME + 1];
	if (!c)
		return;
	snprintf(topic, sizeof(topic), "state.%s", db);
	json_t *payload = json_pack("{s:s, s:s, s:s}", "db", db, "key", key, "op", op);
	mg_bus_client_publish(c, topic, payload);
	json_decref(payload);
}
