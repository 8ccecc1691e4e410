/* libFuzzer target of what lib/etcd reads from the network: every answer
 * of etcd's gateway it parses (range, txn, lease, status) and the watch
 * stream, fed in pieces of a size the input picks. Built with
 * -DMESHGATE_FUZZ=ON (clang); without it the same file becomes a replay
 * driver that runs the seed corpus. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A parser's contract: success gives no message, failure a message and a
 * negative errno. Anything else is a bug. */
static void check(int rc, const char *err)
{
	if (rc > 0 || (rc == 0 && err[0] != '\0') || (rc < 0 && err[0] == '\0'))
		abort();
}

static void check_kv(const struct etcd_kv *kv)
{
	if (!kv->key || !kv->value || kv->value[kv->value_len] != '\0')
		abort();
}

static int on_events(const struct etcd_event *events, size_t n, int64_t revision, void *arg)
{
	int64_t *last = arg;
	if (n > 0 && !events)
		abort();
	for (size_t i = 0; i < n; i++) {
		check_kv(&events[i].kv);
		if (events[i].type != ETCD_OP_PUT && events[i].type != ETCD_OP_DELETE)
			abort();
	}
	/* the revision reached: the last event's, or a later progress notice's */
	if (revision <= 0 || (n > 0 && revision < events[n - 1].kv.mod_revision))
		abort();
	*last = revision;
	return 0;
}

static void parse_answers(const char *body, size_t size)
{
	char err[256];
	struct etcd_range range;
	err[0] = '\0';
	int rc = etcd_parse_range(body, size, &range, err, sizeof(err));
	check(rc, err);
	if (rc == 0)
		for (size_t i = 0; i < range.n; i++)
			check_kv(&range.kvs[i]);
	else if (range.kvs || range.n)
		abort();
	etcd_range_free(&range);

	struct etcd_txn_result txn;
	err[0] = '\0';
	check(etcd_parse_txn(body, size, &txn, err, sizeof(err)), err);

	int64_t id;
	err[0] = '\0';
	rc = etcd_parse_lease_grant(body, size, &id, err, sizeof(err));
	check(rc, err);
	if ((rc == 0) != (id != 0))
		abort();

	int ttl;
	err[0] = '\0';
	rc = etcd_parse_lease_keepalive(body, size, &ttl, err, sizeof(err));
	check(rc, err);
	if (ttl < 0)
		abort();

	err[0] = '\0';
	check(etcd_parse_ack(body, size, err, sizeof(err)), err);
	err[0] = '\0';
	check(etcd_parse_status(body, size, err, sizeof(err)), err);
}

static void feed_stream(const char *body, size_t size, size_t piece)
{
	struct etcd_watch_stream stream;
	int64_t last = 0;
	int rc = 0;
	etcd_watch_stream_init(&stream, on_events, &last);
	for (size_t at = 0; at < size && rc == 0; at += piece) {
		size_t n = size - at < piece ? size - at : piece;
		rc = etcd_watch_stream_feed(&stream, body + at, n);
	}
	if (rc > 0 || (rc < 0 && stream.err[0] == '\0'))
		abort();
	etcd_watch_stream_free(&stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	/* the first byte: the size of the stream's pieces; the rest: the bytes,
	 * copied exactly so that reading past them is caught */
	size_t piece = data[0] % 64 + 1;
	char *body = malloc(size - 1 ? size - 1 : 1);
	if (!body)
		return 0;
	memcpy(body, data + 1, size - 1);
	parse_answers(body, size - 1);
	feed_stream(body, size - 1, piece);
	feed_stream(body, size - 1, size);
	free(body);
	return 0;
}
