/* libFuzzer: a TCP stream as a client sends it, into the plugin's TCP
 * server (through the mock core, on loopback): length-prefixed messages,
 * pipelined, cut anywhere, garbage. The server must answer each complete
 * query with a well-framed message and close the connection on garbage,
 * and keep serving. */
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "mg_mock.h"

extern const struct mg_plugin mg_plugin_descriptor;

static struct mg_mock *mock;
static uint16_t port;
static int epfd = -1;

static void teardown(void)
{
	mg_mock_free(mock);
}

static void setup(void)
{
	char err[512];
	json_t *reply;
	mock = mg_mock_new(NULL, err, sizeof(err));
	if (!mock)
		abort();
	mg_mock_log_level(mock, MG_LOG_ERROR);
	json_t *cfg = json_pack("{s:[s], s:[{s:s, s:s}, {s:s, s:s}]}", "listen", "127.0.0.1:0",
	                        "records", "name", "gitlab", "address", "172.19.0.10", "name",
	                        "gitlab", "address", "fd00::10");
	if (mg_mock_add(mock, &mg_plugin_descriptor, cfg, err, sizeof(err)) ||
	    mg_mock_start(mock, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	json_decref(cfg);
	mg_mock_request(mock, "dns.stats", NULL, &reply);
	const char *l = json_string_value(json_array_get(json_object_get(reply, "listen"), 0));
	port = (uint16_t)atoi(strrchr(l, ':') + 1);
	json_decref(reply);
	json_t *regs = mg_mock_registrations(mock, "dns");
	epfd = (int)json_integer_value(json_array_get(json_object_get(regs, "fds"), 0));
	json_decref(regs);
	atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[1 << 17];
	size_t got = 0;
	int closed = 0;
	if (!mock)
		setup();
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)))
		abort();
	mg_mock_fire_fd(mock, epfd, MG_FD_READ); /* accept */
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 400; i++) {
		struct pollfd p = {fd, POLLIN, 0};
		mg_mock_fire_fd(mock, epfd, MG_FD_READ);
		if (poll(&p, 1, i < 10 ? 0 : 1) != 1)
			continue;
		ssize_t n = read(fd, in + got, sizeof(in) - got);
		if (n <= 0) {
			closed = 1; /* the server closed: done */
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (!closed) /* at the end of the stream the server must close */
		abort();
	/* whatever came back is whole, well-framed messages */
	for (size_t off = 0; off + 2 <= got;) {
		size_t len = (size_t)in[off] << 8 | in[off + 1];
		if (len < DNS_HEADER || !(in[off + 2 + 2] & 0x80))
			abort();
		off += 2 + len;
		if (off > got)
			abort();
	}
	mg_mock_advance(mock, DNS_TCP_IDLE_MS); /* idle connections go */
	return 0;
}
