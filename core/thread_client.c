/* A bus client per thread, for requests and publishing: made on first use,
 * closed when its thread ends. Its own file so that the actors (which close
 * theirs before their thread returns) and the ops table (which hands them
 * out) both depend on it and not on each other. */
#include <pthread.h>
#include <stdio.h>

#include <errno.h>
#include <string.h>

#include "broker.h"
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

/* Sends an event whose topic is known to be valid and heard. */
static int publish_heard(struct core *core, const char *topic, json_t *payload)
{
	struct mg_bus_client *c = core_thread_client(core);
	return c ? mg_bus_client_publish(c, topic, payload) : -ENOTCONN;
}

int core_publish(struct core *core, const char *topic, json_t *payload)
{
	if (!topic || !mg_bus_name_valid(topic, strlen(topic)))
		return -EINVAL;
	/* nobody listens: not serialised, not sent, not routed */
	if (core->broker && !broker_has_subscriber(core->broker, topic))
		return 0;
	return publish_heard(core, topic, payload);
}

void core_publish_state_change(const char *db, const char *key, const char *op, int remote,
                               void *arg)
{
	struct core *core = arg;
	char topic[MG_BUS_MAX_NAME + 1];
	snprintf(topic, sizeof(topic), "state.%s", db);
	/* asked before the JSON is built, so that an unheard change costs none */
	if (!mg_bus_name_valid(topic, strlen(topic)) || !core->broker ||
	    !broker_has_subscriber(core->broker, topic))
		return;
	json_t *payload = json_pack("{s:s, s:s, s:s}", "db", db, "key", key, "op", op);
	if (remote)
		json_object_set_new(payload, "remote", json_true());
	publish_heard(core, topic, payload);
	json_decref(payload);
}
