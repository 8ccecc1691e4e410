/* Runs the real meshgated for a test: a temp dir with a config, the
 * daemon as a child process, a bus client on its ipc socket. */
#ifndef MG_TEST_HARNESS_H
#define MG_TEST_HARNESS_H

#include <jansson.h>
#include <sys/types.h>

#include "bus_client.h"

struct daemon {
	char dir[256]; /* temp dir: config, state, socket */
	char config[300];
	char socket[300];
	char log[300];
	pid_t pid;
	void *zctx;
	struct mg_bus_client *bus;
};

/* Makes the temp dir and writes a config: the core settings pointing into
 * it, the test plugin dir, then `extra` (plugins = [...]; sections). */
void daemon_setup(struct daemon *d, const char *extra);
/* Runs `meshgated --check-config`; returns its exit status, its stderr in out. */
int daemon_check(struct daemon *d, char *out, size_t outlen);
/* Starts meshgated and waits until core.ping answers; 0 on success. */
int daemon_start(struct daemon *d);
/* Starts meshgated and waits only until its bus answers: its plugins may
 * still be starting. */
int daemon_start_serving(struct daemon *d);
/* Waits for the daemon to exit by itself; returns its exit status. */
int daemon_wait_exit(struct daemon *d, int timeout_ms);
void daemon_kill(struct daemon *d, int sig); /* and reaps it */
void daemon_teardown(struct daemon *d);      /* kills, removes the temp dir */
int daemon_call(struct daemon *d, const char *service, const char *json, int timeout_ms,
                json_t **reply);
char *slurp(const char *path);

/* cmocka fixtures: *state is a zeroed struct daemon, whose daemon is
 * killed and temp dir removed also when an assertion fails half way. */
int daemon_fixture_setup(void **state);
int daemon_fixture_teardown(void **state);
#define DAEMON_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, daemon_fixture_setup, daemon_fixture_teardown)

#endif
