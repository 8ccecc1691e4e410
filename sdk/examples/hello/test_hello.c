/* hello's unit test: the plugin's own sources driven through the mock
 * core (no meshgated, no threads). Built with the plugin, in tree and out
 * of tree (see README.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <meshgate/mg_mock.h>

extern const struct mg_plugin mg_plugin_descriptor; /* hello.c's */

static int failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "FAIL: %s\n", what);
		failures++;
	}
}

static int is(const char *got, const char *want)
{
	return got && !strcmp(got, want);
}

int main(void)
{
	char err[512];
	json_t *reply = NULL;
	struct mg_mock *mock = mg_mock_new(NULL, err, sizeof(err));
	if (!mock) {
		fprintf(stderr, "mock: %s\n", err);
		return 1;
	}
	json_t *config = json_pack("{s:s}", "greeting", "Welcome");
	check(mg_mock_add(mock, &mg_plugin_descriptor, config, err, sizeof(err)) == 0, err);
	json_decref(config);
	check(mg_mock_start(mock, err, sizeof(err)) == 0, err);

	json_t *request = json_pack("{s:s}", "name", "test");
	check(mg_mock_request(mock, "hello.say", request, &reply) == 0, "hello.say answers");
	check(is(json_string_value(json_object_get(reply, "message")), "Welcome, test!"),
	      "the greeting comes from the config");
	check(mg_mock_event_count(mock, "hello.greeted") == 1, "one hello.greeted event");
	json_decref(reply);
	json_decref(request);

	request = json_pack("{s:i}", "name", 7);
	check(mg_mock_request(mock, "hello.say", request, &reply) == -EREMOTEIO,
	      "a name that is not a string is an error reply");
	check(is(mg_reply_error(reply), "bad_request"), "the error is bad_request");
	json_decref(reply);
	json_decref(request);

	/* a config meshgated would refuse is refused here too */
	struct mg_mock *other = mg_mock_new(NULL, err, sizeof(err));
	config = json_pack("{s:i}", "greeting", 1);
	check(other &&
	          mg_mock_add(other, &mg_plugin_descriptor, config, err, sizeof(err)) == -EINVAL,
	      "a greeting that is not a string is refused");
	json_decref(config);
	mg_mock_free(other);

	mg_mock_free(mock);
	printf("hello: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
