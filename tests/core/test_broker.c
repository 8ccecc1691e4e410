/* The broker's subscription lookup that publishers ask before they pay for
 * an event: every subscription counts, a plugin's (broker_subscribe) and an
 * outside client's (SUB over the socket), and none once it is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "broker.h"
#include "bus_proto.h"

#define INPROC "inproc://test-broker"

struct fixture {
	void *zctx;
	struct broker *b;
};

static int setup(void **state)
{
	static struct fixture f;
	char err[256];
	f.zctx = zmq_ctx_new();
	f.b = broker_new(f.zctx, INPROC, NULL, NULL, NULL, err, sizeof(err));
	assert_non_null(f.b);
	assert_int_equal(broker_start(f.b), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	broker_free(f->b);
	zmq_ctx_term(f->zctx);
	return 0;
}

static void test_plugin_subscriptions_count(void **state)
{
	struct broker *b = ((struct fixture *)*state)->b;
	assert_false(broker_has_subscriber(b, "state.wg"));
	assert_int_equal(broker_subscribe(b, "state.", "dns"), 0);
	assert_true(broker_has_subscriber(b, "state.wg"));
	assert_false(broker_has_subscriber(b, "device.changed"));
	assert_false(broker_has_subscriber(b, "state")); /* prefixes match forward only */
	assert_int_equal(broker_unsubscribe(b, "state.", "dns"), 0);
	assert_false(broker_has_subscriber(b, "state.wg"));
	assert_int_equal(broker_subscribe(b, "device.", "fw"), 0);
	broker_forget(b, "fw");
	assert_false(broker_has_subscriber(b, "device.changed"));
}

/* Sends one TO_BROKER message of `verb` on `topic` and waits for its ACK. */
static void sub_over_socket(void *sock, enum mg_bus_verb verb, const char *topic)
{
	struct mg_bus_msg msg = {.verb = verb, .name = {topic, strlen(topic)}};
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	char deadline[24];
	size_t n = mg_bus_encode(MG_BUS_TO_BROKER, &msg, frames, deadline);
	for (size_t i = 0; i < n; i++)
		assert_true(zmq_send(sock, frames[i].data, frames[i].len,
		                     i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
	char buf[256];
	int more = 1, ack = 0;
	while (more) {
		int len = zmq_recv(sock, buf, sizeof(buf), 0);
		assert_true(len >= 0);
		ack |= len == 3 && !memcmp(buf, "ACK", 3);
		more = 0;
		size_t sz = sizeof(more);
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
	}
	assert_true(ack);
}

static void test_outside_subscriptions_count(void **state)
{
	struct fixture *f = *state;
	void *sock = zmq_socket(f->zctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	assert_int_equal(zmq_connect(sock, INPROC), 0);

	sub_over_socket(sock, MG_BUS_SUB, "device.");
	assert_true(broker_has_subscriber(f->b, "device.changed"));
	sub_over_socket(sock, MG_BUS_UNSUB, "device.");
	assert_false(broker_has_subscriber(f->b, "device.changed"));
	zmq_close(sock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plugin_subscriptions_count),
	    cmocka_unit_test(test_outside_subscriptions_count),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
