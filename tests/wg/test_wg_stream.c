/* The streamed read of a get=1 answer: fed in pieces split at every byte
 * boundary (and a byte at a time) it reads the same device as the whole
 * answer does; a fault in the middle is the same error wherever the
 * pieces end. Then over a real socket, from a mock daemon that writes its
 * answer a few bytes a send or hangs up half-way: wg_peers_reconcile
 * reads the device as it streams and writes nothing when the answer is
 * bad. Root (the mock daemon's socket is in /var/run/wireguard). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "wg_internal.h"
#include "wg_uapi.h"

#define KEY_A "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY_B "2222222222222222222222222222222222222222222222222222222222222222"
#define KEY_C "3333333333333333333333333333333333333333333333333333333333333333"
#define PSK   "5555555555555555555555555555555555555555555555555555555555555555"
#define KEY_P "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a060"
#define ZERO  "0000000000000000000000000000000000000000000000000000000000000000"

static const char ANSWER[] = "private_key=" KEY_P "\n"
                             "listen_port=51999\n"
                             "public_key=" KEY_A "\n"
                             "preshared_key=" ZERO "\n"
                             "endpoint=192.0.2.7:40001\n"
                             "last_handshake_time_sec=1700000000\n"
                             "rx_bytes=1200\n"
                             "persistent_keepalive_interval=0\n"
                             "allowed_ip=10.0.0.2/32\n"
                             "public_key=" KEY_B "\n"
                             "preshared_key=" ZERO "\n"
                             "allowed_ip=10.0.3.0/24\n"
                             "allowed_ip=fd00::3/128\n"
                             "public_key=" KEY_C "\n"
                             "preshared_key=" PSK "\n"
                             "allowed_ip=10.0.0.4/32\n"
                             "errno=0\n"
                             "\n";

/* What the peers handed on look like, one line each, to compare reads. */
struct seen {
	char text[2048];
	size_t len;
	int peers;
};

static int note_peer(const struct wg_peer *p, void *arg)
{
	struct seen *s = arg;
	char hex[WG_KEY_HEX_LEN];

	wg_key_to_hex(hex, p->public_key);
	s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len,
	                           "%.4s psk=%d ka=%u rx=%llu ips=", hex,
	                           !!(p->flags & WG_PEER_HAS_PRESHARED_KEY),
	                           p->persistent_keepalive, (unsigned long long)p->rx_bytes);
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "%d/%u,",
		                           p->allowed_ips[i].family, p->allowed_ips[i].cidr);
	s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "\n");
	s->peers++;
	return 0;
}

/* Reads text in pieces: the first `split` bytes, then `step` at a time. */
static int read_split(const char *text, size_t len, size_t split, size_t step, struct seen *s,
                      struct wg_device *dev, char *err, size_t errlen)
{
	struct wg_uapi_reader r;
	size_t pos = 0;

	memset(s, 0, sizeof(*s));
	memset(dev, 0, sizeof(*dev));
	wg_uapi_reader_init(&r, dev, note_peer, s);
	while (pos < len) {
		size_t n = pos == 0 && split ? split : step;

		n = n < len - pos ? n : len - pos;
		if (wg_uapi_reader_feed(&r, text + pos, n, NULL, err, errlen))
			break;
		pos += n;
	}
	return wg_uapi_reader_finish(&r, err, errlen);
}

static void test_every_split_reads_the_same(void **state)
{
	size_t len = strlen(ANSWER);
	struct seen whole, part;
	struct wg_device dev_whole, dev;
	char err[128];

	(void)state;
	assert_int_equal(read_split(ANSWER, len, 0, len, &whole, &dev_whole, err, sizeof(err)), 0);
	assert_int_equal(whole.peers, 3);
	assert_int_equal(dev_whole.listen_port, 51999);
	assert_true(dev_whole.flags & WG_DEVICE_HAS_PRIVATE_KEY);
	assert_non_null(strstr(whole.text, "2222 psk=0 ka=0 rx=0 ips=2/24,10/128,"));
	assert_non_null(strstr(whole.text, "3333 psk=1"));
	assert_non_null(strstr(whole.text, "1111 psk=0 ka=0 rx=1200 ips=2/32,"));
	for (size_t split = 1; split < len; split++) {
		/* two pieces, cut at every byte, and the rest a few bytes at a time */
		static const size_t steps[] = {1, 7, SIZE_MAX};

		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			size_t step = steps[k];

			assert_int_equal(
			    read_split(ANSWER, len, split, step, &part, &dev, err, sizeof(err)), 0);
			assert_int_equal(part.peers, 3);
			assert_string_equal(part.text, whole.text);
			assert_memory_equal(&dev, &dev_whole, sizeof(dev));
		}
	}
	/* one byte at a time */
	assert_int_equal(read_split(ANSWER, len, 0, 1, &part, &dev, err, sizeof(err)), 0);
	assert_string_equal(part.text, whole.text);
}

/* A bad line in the middle (B's allowed IP) is the same error, at the same
 * line, wherever the pieces end; the peers before it were handed on, and
 * the read says it failed, so a caller keeps nothing of it. */
static void test_fault_mid_stream(void **state)
{
	char bad[sizeof(ANSWER)];
	char *at;
	size_t len;
	struct seen s;
	struct wg_device dev;
	char err[128];

	(void)state;
	memcpy(bad, ANSWER, sizeof(ANSWER));
	at = strstr(bad, "10.0.3.0/24");
	assert_non_null(at);
	memcpy(at, "10.0.3.0/99", 11);
	len = strlen(bad);
	for (size_t split = 1; split < len; split++) {
		err[0] = '\0';
		assert_int_equal(read_split(bad, len, split, 5, &s, &dev, err, sizeof(err)),
		                 -EPROTO);
		assert_non_null(strstr(err, "bad line 12"));
		assert_int_equal(s.peers, 1); /* A, complete before B's bad line */
	}
	/* cut anywhere before its end: truncated or cut, never a device */
	for (size_t cut = 0; cut < strlen(ANSWER); cut++) {
		assert_int_equal(read_split(ANSWER, cut, 3, 3, &s, &dev, err, sizeof(err)),
		                 -EPROTO);
		assert_true(strstr(err, "truncated") || strstr(err, "cut in line") ||
		            strstr(err, "no errno"));
	}
}

/* A peer the consumer cannot take stops the read with its error. */
static int refuse(const struct wg_peer *p, void *arg)
{
	(void)p;
	return ++*(int *)arg == 2 ? -ENOMEM : 0;
}

static void test_consumer_fault(void **state)
{
	struct wg_uapi_reader r;
	struct wg_device dev = {0};
	int calls = 0;
	char err[128];

	(void)state;
	wg_uapi_reader_init(&r, &dev, refuse, &calls);
	assert_int_equal(wg_uapi_reader_feed(&r, ANSWER, strlen(ANSWER), NULL, err, sizeof(err)),
	                 -ENOMEM);
	assert_int_equal(wg_uapi_reader_finish(&r, err, sizeof(err)), -ENOMEM);
	assert_int_equal(calls, 2);
	assert_non_null(strstr(err, "out of memory"));
}

/* ---- a mock daemon on a real UAPI socket ---- */

static struct {
	char ifname[IF_NAMESIZE];
	char path[108];
	int listener;
	const char *answer; /* to get=1 */
	size_t answer_len;  /* how much of it to send before hanging up */
	size_t piece;       /* bytes a send */
	int gets, sets;
	pthread_t thread;
} daemon_;

/* Serves connections until the listener closes: reads one request (up to
 * its empty line), answers get=1 with the answer in pieces, set=1 with
 * errno=0, and hangs up. */
static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		char req[65536];
		size_t len = 0;
		int fd = accept(daemon_.listener, NULL, NULL);

		if (fd < 0)
			return NULL;
		while (len < sizeof(req)) {
			ssize_t n = recv(fd, req + len, sizeof(req) - len, 0);

			if (n <= 0)
				break;
			len += (size_t)n;
			if (len >= 2 && !memcmp(req + len - 2, "\n\n", 2))
				break;
		}
		if (len >= 6 && !memcmp(req, "get=1\n", 6)) {
			daemon_.gets++;
			for (size_t pos = 0; pos < daemon_.answer_len; pos += daemon_.piece) {
				size_t n = daemon_.answer_len - pos;

				send(fd, daemon_.answer + pos,
				     n < daemon_.piece ? n : daemon_.piece, MSG_NOSIGNAL);
				if (pos % 64 == 0)
					usleep(100); /* so that the reader sees pieces */
			}
		} else if (len >= 6 && !memcmp(req, "set=1\n", 6)) {
			daemon_.sets++;
			send(fd, "errno=0\n\n", 9, MSG_NOSIGNAL);
		}
		close(fd);
	}
}

static int daemon_start(void **state)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	(void)state;
	if (geteuid() != 0)
		return 0;
	snprintf(daemon_.ifname, sizeof(daemon_.ifname), "mgst%d", (int)getpid());
	mkdir("/var/run/wireguard", 0755);
	assert_int_equal(wg_uapi_socket_path(daemon_.path, sizeof(daemon_.path), daemon_.ifname),
	                 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", daemon_.path);
	unlink(daemon_.path);
	daemon_.listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(daemon_.listener >= 0);
	assert_int_equal(bind(daemon_.listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(daemon_.listener, 4), 0);
	assert_int_equal(pthread_create(&daemon_.thread, NULL, serve, NULL), 0);
	return 0;
}

static int daemon_stop(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	shutdown(daemon_.listener, SHUT_RDWR);
	close(daemon_.listener);
	pthread_join(daemon_.thread, NULL);
	unlink(daemon_.path);
	return 0;
}

static void want_peer(struct wg_peer *p, struct wg_allowed_ip *ip, const char *hex,
                      const char *addr)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(wg_key_from_hex(p->public_key, hex), 0);
	assert_int_equal(wg_allowed_ip_parse(ip, addr), 0);
	p->allowed_ips = ip;
	p->n_allowed_ips = 1;
}

static void test_socket_streamed(void **state)
{
	const struct wg_backend *be;
	struct wg_peer want[3];
	struct wg_allowed_ip ips[2], b_ips[2];
	struct wg_reconcile_counts c;
	char err[200] = "";

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(wg_backend_select("userspace", &be, err, sizeof(err)), 0);
	/* the device has A, B (two prefixes) and C (a psk); the list has A and
	 * C as they are: B is the one removal */
	want_peer(&want[0], &ips[0], KEY_A, "10.0.0.2/32");
	want_peer(&want[1], &ips[1], KEY_C, "10.0.0.4/32");
	assert_int_equal(wg_key_from_hex(want[1].preshared_key, PSK), 0);
	want[1].flags = WG_PEER_HAS_PRESHARED_KEY;
	daemon_.answer = ANSWER;
	daemon_.answer_len = strlen(ANSWER);
	for (size_t piece = 1; piece <= 97; piece += 16) {
		daemon_.piece = piece;
		daemon_.sets = 0;
		assert_int_equal(
		    wg_peers_reconcile(be, daemon_.ifname, want, 2, &c, err, sizeof(err)), 0);
		assert_int_equal(c.removed, 1);
		assert_int_equal(c.added + c.changed, 0);
		assert_int_equal(daemon_.sets, 1);
	}
	/* unchanged: the three as they are, no set */
	want_peer(&want[2], &b_ips[0], KEY_B, "10.0.3.0/24");
	assert_int_equal(wg_allowed_ip_parse(&b_ips[1], "fd00::3/128"), 0);
	want[2].n_allowed_ips = 2;
	daemon_.sets = 0;
	assert_int_equal(wg_peers_reconcile(be, daemon_.ifname, want, 3, &c, err, sizeof(err)), 0);
	assert_int_equal(daemon_.sets, 0);
}

/* A daemon that hangs up in the middle of its answer: an error, and
 * nothing written, wherever it stops. */
static void test_socket_hangs_up_mid_answer(void **state)
{
	const struct wg_backend *be;
	struct wg_reconcile_counts c;
	char err[200];

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(wg_backend_select("userspace", &be, err, sizeof(err)), 0);
	daemon_.answer = ANSWER;
	daemon_.piece = 13;
	daemon_.sets = 0;
	for (size_t cut = 1; cut < strlen(ANSWER); cut += 37) {
		daemon_.answer_len = cut;
		/* an empty list would remove every peer read: it must not */
		assert_int_equal(
		    wg_peers_reconcile(be, daemon_.ifname, NULL, 0, &c, err, sizeof(err)), -EPROTO);
		assert_non_null(strstr(err, daemon_.ifname));
		assert_int_equal(daemon_.sets, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_split_reads_the_same),
	    cmocka_unit_test(test_fault_mid_stream),
	    cmocka_unit_test(test_consumer_fault),
	    cmocka_unit_test(test_socket_streamed),
	    cmocka_unit_test(test_socket_hangs_up_mid_answer),
	};

	return cmocka_run_group_tests(tests, daemon_start, daemon_stop);
}
