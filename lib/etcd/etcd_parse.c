/* The gateway's answers (etcd_parse.h). etcd's protobuf JSON writes int64
 * as strings, leaves out fields that are 0, false or empty, and encodes
 * bytes in base64; an error is {"error", "message", "code": gRPC code}. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_parse.h"

/* One object of a watch stream may batch many revisions; more than this
 * is not an answer we can hold. */
#define WATCH_LINE_MAX (64u << 20)

/* gRPC status codes (google.golang.org/grpc/codes) etcd answers with. */
enum {
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNAVAILABLE = 14,
	GRPC_UNAUTHENTICATED = 16,
};

static int grpc_errno(json_int_t code)
{
	switch (code) {
	case GRPC_INVALID_ARGUMENT:
		return -EINVAL;
	case GRPC_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	case GRPC_NOT_FOUND:
		return -ENOENT;
	case GRPC_PERMISSION_DENIED:
	case GRPC_UNAUTHENTICATED:
		return -EACCES;
	case GRPC_OUT_OF_RANGE:
		return -ERANGE;
	/* no leader, request timed out, too many requests, out of space:
	 * the cluster cannot take this now */
	case GRPC_RESOURCE_EXHAUSTED:
	case GRPC_FAILED_PRECONDITION:
	case GRPC_UNAVAILABLE:
		return -EHOSTUNREACH;
	default:
		return -EIO;
	}
}

static int bad(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "etcd answered something unexpected: %s", why);
	return -EBADMSG;
}

/* etcd's own message is about the request (no leader, compacted, too many
 * operations), never its keys or values. */
static int etcd_error(const json_t *root, char *err, size_t errlen)
{
	json_t *code = json_object_get(root, "code");
	if (!json_is_integer(code) || json_integer_value(code) == 0)
		return 0;
	const char *message = json_string_value(json_object_get(root, "message"));
	if (!message)
		message = json_string_value(json_object_get(root, "error"));
	snprintf(err, errlen, "etcd: %s (code %" JSON_INTEGER_FORMAT ")",
	         message ? message : "error", json_integer_value(code));
	return grpc_errno(json_integer_value(code));
}

/* The answer as an object, or etcd's error. */
static int load_answer(const char *body, size_t len, json_t **root, char *err, size_t errlen)
{
	json_error_t jerr;
	*root = json_loadb(body, len, 0, &jerr);
	if (!json_is_object(*root)) {
		json_decref(*root);
		*root = NULL;
		return bad(err, errlen, "not a JSON object");
	}
	int rc = etcd_error(*root, err, errlen);
	if (rc) {
		json_decref(*root);
		*root = NULL;
	}
	return rc;
}

/* An int64 field: a string of digits (or a JSON integer); missing is 0. */
static int get_int64(const json_t *obj, const char *name, int64_t *out)
{
	json_t *v = json_object_get(obj, name);
	*out = 0;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s || !*s)
		return -EBADMSG;
	char *end;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (errno || *end)
		return -EBADMSG;
	*out = n;
	return 0;
}

/* A uint64 field (a member's ID): as get_int64. */
static int get_uint64(const json_t *obj, const char *name, uint64_t *out)
{
	json_t *v = json_object_get(obj, name);
	*out = 0;
	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s || *s < '0' || *s > '9')
		return -EBADMSG;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno || *end)
		return -EBADMSG;
	*out = n;
	return 0;
}

static int get_bool(const json_t *obj, const char *name, int *out)
{
	json_t *v = json_object_get(obj, name);
	*out = 0;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return -EBADMSG;
	*out = json_is_true(v);
	return 0;
}

/* A base64 bytes field as a NUL-terminated copy; missing is "". */
static int get_bytes(const json_t *obj, const char *name, char **out, size_t *out_len)
{
	json_t *v = json_object_get(obj, name);
	const char *b64 = v ? json_string_value(v) : "";
	*out = NULL;
	if (!b64)
		return -EBADMSG;
	size_t b64_len = strlen(b64);
	size_t max = b64_len / 4 * 3 + 1;
	char *bin = malloc(max);
	size_t bin_len = 0;
	const char *end;
	if (!bin)
		return -ENOMEM;
	if (sodium_base642bin((unsigned char *)bin, max, b64, b64_len, NULL, &bin_len, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + b64_len) {
		free(bin);
		return -EBADMSG;
	}
	bin[bin_len] = '\0';
	*out = bin;
	if (out_len)
		*out_len = bin_len;
	return 0;
}

static void kv_free(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

static int parse_kv(const json_t *obj, struct etcd_kv *kv, char *err, size_t errlen)
{
	int rc;
	size_t key_len = 0;
	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(obj))
		return bad(err, errlen, "a kv is not an object");
	if ((rc = get_bytes(obj, "key", &kv->key, &key_len)) ||
	    (rc = get_bytes(obj, "value", &kv->value, &kv->value_len)))
		goto fail;
	/* meshgate's keys are text: one with a NUL in it is not ours */
	if (memchr(kv->key, '\0', key_len)) {
		rc = -EBADMSG;
		goto fail;
	}
	if (get_int64(obj, "create_revision", &kv->create_revision) ||
	    get_int64(obj, "mod_revision", &kv->mod_revision) ||
	    get_int64(obj, "version", &kv->version) || get_int64(obj, "lease", &kv->lease)) {
		rc = -EBADMSG;
		goto fail;
	}
	return 0;
fail:
	kv_free(kv);
	if (rc == -ENOMEM) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	return bad(err, errlen, "a kv's fields");
}

static int header_revision(const json_t *root, int64_t *revision)
{
	json_t *header = json_object_get(root, "header");
	*revision = 0;
	if (!json_is_object(header))
		return -EBADMSG;
	return get_int64(header, "revision", revision);
}

void etcd_range_free(struct etcd_range *range)
{
	for (size_t i = 0; i < range->n; i++)
		kv_free(&range->kvs[i]);
	free(range->kvs);
	memset(range, 0, sizeof(*range));
}

int etcd_parse_range(const char *body, size_t len, struct etcd_range *out, char *err, size_t errlen)
{
	json_t *root;
	memset(out, 0, sizeof(*out));
	int rc = load_answer(body, len, &root, err, errlen);
	if (rc)
		return rc;
	json_t *kvs = json_object_get(root, "kvs");
	if (header_revision(root, &out->revision) || get_int64(root, "count", &out->count) ||
	    get_bool(root, "more", &out->more) || (kvs && !json_is_array(kvs))) {
		rc = bad(err, errlen, "a range's fields");
		goto fail;
	}
	size_t n = json_array_size(kvs);
	if (n) {
		out->kvs = calloc(n, sizeof(*out->kvs));
		if (!out->kvs) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto fail;
		}
	}
	for (; out->n < n; out->n++) {
		rc = parse_kv(json_array_get(kvs, out->n), &out->kvs[out->n], err, errlen);
		if (rc)
			goto fail;
	}
	json_decref(root);
	return 0;
fail:
	etcd_range_free(out);
	json_decref(root);
	return rc;
}

int etcd_parse_txn(const char *body, size_t len, struct etcd_txn_result *out, char *err,
                   size_t errlen)
{
	json_t *root;
	memset(out, 0, sizeof(*out));
	int rc = load_answer(body, len, &root, err, errlen);
	if (rc)
		return rc;
	if (header_revision(root, &out->revision) || get_bool(root, "succeeded", &out->succeeded))
		rc = bad(err, errlen, "a txn's fields");
	json_decref(root);
	return rc;
}

int etcd_parse_lease_grant(const char *body, size_t len, int64_t *id, char *err, size_t errlen)
{
	json_t *root;
	int64_t ttl;
	*id = 0;
	int rc = load_answer(body, len, &root, err, errlen);
	if (rc)
		return rc;
	const char *why = json_string_value(json_object_get(root, "error"));
	if (why && *why) {
		snprintf(err, errlen, "etcd: %s", why);
		rc = -EHOSTUNREACH;
	} else if (get_int64(root, "ID", id) || get_int64(root, "TTL", &ttl) || *id == 0 ||
	           ttl <= 0) {
		*id = 0;
		rc = bad(err, errlen, "a lease grant's fields");
	}
	json_decref(root);
	return rc;
}

int etcd_parse_lease_keepalive(const char *body, size_t len, int *ttl_left, char *err,
                               size_t errlen)
{
	json_t *root;
	int64_t ttl;
	*ttl_left = 0;
	int rc = load_answer(body, len, &root, err, errlen);
	if (rc)
		return rc;
	/* a stream of one answer: {"result": {...}}, or {"error": {...}} */
	json_t *result = json_object_get(root, "result");
	json_t *stream_error = json_object_get(root, "error");
	if (stream_error) {
		const char *why = json_string_value(json_object_get(stream_error, "message"));
		snprintf(err, errlen, "etcd: %s", why ? why : "the keepalive failed");
		rc = -EHOSTUNREACH;
	} else if (!json_is_object(result) || get_int64(result, "TTL", &ttl) || ttl < 0 ||
	           ttl > INT32_MAX) {
		rc = bad(err, errlen, "a keepalive's fields");
	} else {
		*ttl_left = (int)ttl;
	}
	json_decref(root);
	return rc;
}

int etcd_parse_ack(const char *body, size_t len, char *err, size_t errlen)
{
	json_t *root;
	int rc = load_answer(body, len, &root, err, errlen);
	json_decref(root);
	return rc;
}

int etcd_parse_status(const char *body, size_t len, char *err, size_t errlen)
{
	json_t *root;
	uint64_t leader;
	int rc = load_answer(body, len, &root, err, errlen);
	if (rc)
		return rc;
	/* 3.4 answers "errors": ["etcdserver: no leader"] and no leader at once,
	 * where /health waits for a read through raft first */
	json_t *errors = json_object_get(root, "errors");
	if (get_uint64(root, "leader", &leader) || (errors && !json_is_array(errors))) {
		rc = bad(err, errlen, "a status's fields");
	} else if (json_array_size(errors) > 0) {
		const char *why = json_string_value(json_array_get(errors, 0));
		snprintf(err, errlen, "etcd: %s", why ? why : "the member reports errors");
		rc = -EHOSTUNREACH;
	} else if (leader == 0) {
		snprintf(err, errlen, "etcd: the member knows no leader");
		rc = -EHOSTUNREACH;
	}
	json_decref(root);
	return rc;
}

/* ---- the watch stream ---- */

void etcd_watch_stream_init(struct etcd_watch_stream *stream, etcd_watch_fn fn, void *arg)
{
	memset(stream, 0, sizeof(*stream));
	stream->fn = fn;
	stream->arg = arg;
}

static void events_free_kvs(struct etcd_event *events, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kv_free(&events[i].kv);
}

void etcd_watch_stream_free(struct etcd_watch_stream *stream)
{
	free(stream->line);
	stream->line = NULL;
	stream->len = stream->cap = 0;
	events_free_kvs(stream->events, stream->n_events);
	free(stream->events);
	stream->events = NULL;
	stream->n_events = stream->cap_events = 0;
	stream->seen = 0;
}

static int parse_event(const json_t *obj, struct etcd_event *event, char *err, size_t errlen)
{
	const char *type = json_string_value(json_object_get(obj, "type"));
	if (!json_is_object(obj))
		return bad(err, errlen, "a watch event is not an object");
	/* PUT is 0: left out */
	if (!type || strcmp(type, "PUT") == 0)
		event->type = ETCD_OP_PUT;
	else if (strcmp(type, "DELETE") == 0)
		event->type = ETCD_OP_DELETE;
	else
		return bad(err, errlen, "a watch event's type");
	return parse_kv(json_object_get(obj, "kv"), &event->kv, err, errlen);
}

/* The events of one answer, in order, join those gathered from the
 * piece of the stream being fed (deliver hands them to fn at its end).
 * The revision seen is the last event's: an answer that catches up from
 * an old revision carries the store's newest revision in its header
 * before the rest has come. */
static int gather_events(struct etcd_watch_stream *stream, const json_t *list, int64_t header_rev)
{
	size_t n = json_array_size(list);
	if (stream->n_events + n > stream->cap_events) {
		size_t cap = stream->cap_events ? stream->cap_events : 16;
		while (cap < stream->n_events + n)
			cap *= 2;
		struct etcd_event *events = realloc(stream->events, cap * sizeof(*events));
		if (!events) {
			snprintf(stream->err, sizeof(stream->err), "out of memory");
			return -ENOMEM;
		}
		stream->events = events;
		stream->cap_events = cap;
	}
	size_t before = stream->n_events;
	/* what the piece delivers so far: gathered events or a progress notice */
	int64_t seen = stream->seen;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		struct etcd_event *event = &stream->events[stream->n_events];
		if ((rc = parse_event(json_array_get(list, i), event, stream->err,
		                      sizeof(stream->err))))
			break;
		stream->n_events++;
		/* every change has a revision: without one the events could not
		 * be ordered, nor the watch resumed after them */
		if (event->kv.mod_revision <= 0)
			rc = bad(stream->err, sizeof(stream->err),
			         "a watch event without its revision");
		else if (event->kv.mod_revision < seen || event->kv.mod_revision > header_rev)
			rc = bad(stream->err, sizeof(stream->err), "watch events out of order");
		seen = event->kv.mod_revision;
	}
	if (rc) {
		/* none of a bad answer's events */
		events_free_kvs(stream->events + before, stream->n_events - before);
		stream->n_events = before;
		return rc;
	}
	stream->seen = seen;
	return 0;
}

/* What the piece of the stream brought, in one call of fn: a burst of
 * answers becomes one change of the caller's (one mirror commit). */
static int deliver(struct etcd_watch_stream *stream)
{
	if (!stream->seen)
		return 0;
	int rc = stream->fn(stream->n_events ? stream->events : NULL, stream->n_events,
	                    stream->seen, stream->arg);
	events_free_kvs(stream->events, stream->n_events);
	stream->n_events = 0;
	stream->seen = 0;
	return rc;
}

static int handle_object(struct etcd_watch_stream *stream, const char *text, size_t len)
{
	char *err = stream->err;
	size_t errlen = sizeof(stream->err);
	json_t *root;
	int64_t revision, compact_revision;
	int created, canceled;
	int rc = load_answer(text, len, &root, err, errlen);
	if (rc)
		return rc;
	json_t *result = json_object_get(root, "result");
	json_t *stream_error = json_object_get(root, "error");
	json_t *events = json_object_get(result, "events");
	if (stream_error) {
		const char *why = json_string_value(json_object_get(stream_error, "message"));
		snprintf(err, errlen, "etcd ended the watch: %s", why ? why : "an error");
		rc = -EHOSTUNREACH;
	} else if (!json_is_object(result) || header_revision(result, &revision) ||
	           get_bool(result, "created", &created) ||
	           get_bool(result, "canceled", &canceled) ||
	           get_int64(result, "compact_revision", &compact_revision) ||
	           (events && !json_is_array(events))) {
		rc = bad(err, errlen, "a watch answer's fields");
	} else if (compact_revision > 0) {
		snprintf(err, errlen, "etcd compacted the revisions to watch (up to %" PRId64 ")",
		         compact_revision);
		rc = -ERANGE;
	} else if (canceled) {
		const char *why = json_string_value(json_object_get(result, "cancel_reason"));
		snprintf(err, errlen, "etcd canceled the watch%s%s", why ? ": " : "",
		         why ? why : "");
		rc = -EHOSTUNREACH;
	} else if (created) {
		/* its revision is the store's, not one seen: events may follow */
		stream->created = 1;
	} else if (!stream->created) {
		rc = bad(err, errlen, "a watch answer before the watch was created");
	} else if (json_array_size(events) > 0) {
		rc = gather_events(stream, events, revision);
	} else if (revision > stream->seen) {
		/* a progress notice: everything up to the header's revision came */
		stream->seen = revision;
	}
	json_decref(root);
	return rc;
}

static int append(struct etcd_watch_stream *stream, const char *data, size_t len)
{
	if (stream->len + len > WATCH_LINE_MAX)
		return bad(stream->err, sizeof(stream->err), "a watch answer too large");
	if (stream->len + len > stream->cap) {
		size_t cap = stream->cap ? stream->cap : 4096;
		while (cap < stream->len + len)
			cap *= 2;
		char *line = realloc(stream->line, cap);
		if (!line) {
			snprintf(stream->err, sizeof(stream->err), "out of memory");
			return -ENOMEM;
		}
		stream->line = line;
		stream->cap = cap;
	}
	memcpy(stream->line + stream->len, data, len);
	stream->len += len;
	return 0;
}

static int is_blank(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\r", text[i]))
			return 0;
	return 1;
}

/* The gateway writes each object on one line: a line is complete at its
 * newline, whichever piece of the stream brings it. */
int etcd_watch_stream_feed(struct etcd_watch_stream *stream, const char *data, size_t len)
{
	int rc = 0;
	while (len > 0 && !rc) {
		const char *newline = memchr(data, '\n', len);
		size_t take = newline ? (size_t)(newline - data) : len;
		if ((rc = append(stream, data, take)))
			break;
		data += take;
		len -= take;
		if (!newline)
			break;
		data++;
		len--;
		if (!is_blank(stream->line, stream->len))
			rc = handle_object(stream, stream->line, stream->len);
		stream->len = 0;
	}
	/* the answers before a bad one are still etcd's word */
	int delivered = deliver(stream);
	return rc ? rc : delivered;
}
