/* The bus frames: what decodes, what is refused and why. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bus_proto.h"

#define S(text) ((struct mg_bus_slice){text, sizeof(text) - 1})

static void test_round_trip(void **unused)
{
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	char deadline[24];
	struct mg_bus_msg in = {.verb = MG_BUS_REQ,
	                        .id = S("42"),
	                        .name = S("preauth.redeem"),
	                        .payload = S("{}"),
	                        .deadline_ms = 1234567890123ULL};
	struct mg_bus_msg out;
	const char *why;
	(void)unused;
	size_t n = mg_bus_encode(MG_BUS_TO_BROKER, &in, frames, deadline);
	assert_int_equal(n, 6);
	assert_int_equal(mg_bus_decode(MG_BUS_TO_BROKER, frames, n, &out, &why), 0);
	assert_int_equal(out.verb, MG_BUS_REQ);
	assert_int_equal(out.deadline_ms, 1234567890123ULL);
	assert_memory_equal(out.name.data, "preauth.redeem", 14);

	in.origin = S("plugin/api");
	n = mg_bus_encode(MG_BUS_FROM_BROKER, &in, frames, deadline);
	assert_int_equal(n, 7);
	assert_int_equal(mg_bus_decode(MG_BUS_FROM_BROKER, frames, n, &out, &why), 0);
	assert_memory_equal(out.origin.data, "plugin/api", 10);
}

static void expect_refusal(struct mg_bus_slice *frames, size_t n, const char *reason)
{
	struct mg_bus_msg msg;
	const char *why = NULL;
	assert_int_equal(mg_bus_decode(MG_BUS_TO_BROKER, frames, n, &msg, &why), -EPROTO);
	assert_string_equal(why, reason);
}

static void test_refusals(void **unused)
{
	(void)unused;
	struct mg_bus_slice a[] = {S("MG1")};
	expect_refusal(a, 1, "too few frames");
	struct mg_bus_slice b[] = {S("MG2"), S("PUB"), S("t"), S("{}")};
	expect_refusal(b, 4, "unknown protocol version");
	struct mg_bus_slice c[] = {S("MG1"), S("YELL"), S("t")};
	expect_refusal(c, 3, "unknown verb");
	struct mg_bus_slice d[] = {S("MG1"), S("PUB"), S("t")};
	expect_refusal(d, 3, "wrong number of frames for verb");
	struct mg_bus_slice e[] = {S("MG1"), S("REQ"), S("1"), S("svc"), S("12x"), S("{}")};
	expect_refusal(e, 6, "bad deadline");
	struct mg_bus_slice f[] = {S("MG1"), S("REQ"), S(""), S("svc"), S("12"), S("{}")};
	expect_refusal(f, 6, "bad request id");
	struct mg_bus_slice g[] = {S("MG1"), S("SUB"), S("a b")};
	expect_refusal(g, 3, "bad service or topic name");
	struct mg_bus_slice h[] = {S("MG1"), S("REQ"), S("1"), S("svc"), S("99999999999999999999"),
	                           S("{}")};
	expect_refusal(h, 6, "bad deadline");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
