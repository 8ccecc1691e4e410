/* The answers of etcd's JSON gateway, turned into etcd.h's structs. Kept
 * apart from the transport so that a fuzz target reaches every parser of
 * what arrives from the network without one (tests/etcd/fuzz_etcd_parse.c).
 *
 * Each parser takes the body as bytes (not NUL-terminated), returns 0 or
 * a negative errno (an error answer of etcd mapped as etcd.h lists, or
 * -EBADMSG), and on failure writes why to `err` and leaves no allocation
 * behind. Messages never quote keys or values. */
#ifndef MG_ETCD_PARSE_H
#define MG_ETCD_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "etcd.h"

int etcd_parse_range(const char *body, size_t len, struct etcd_range *out, char *err,
                     size_t errlen);
int etcd_parse_txn(const char *body, size_t len, struct etcd_txn_result *out, char *err,
                   size_t errlen);
int etcd_parse_lease_grant(const char *body, size_t len, int64_t *id, char *err, size_t errlen);
/* *ttl_left 0: the lease is gone (etcd answers without a TTL). */
int etcd_parse_lease_keepalive(const char *body, size_t len, int *ttl_left, char *err,
                               size_t errlen);
/* An answer that carries nothing but success or an error (lease revoke). */
int etcd_parse_ack(const char *body, size_t len, char *err, size_t errlen);
/* /v3/maintenance/status: 0 when the member knows a leader, else
 * -EHOSTUNREACH. */
int etcd_parse_status(const char *body, size_t len, char *err, size_t errlen);

/* A watch's answer is a stream of JSON objects, one a line, that arrive
 * in pieces of any size. */
struct etcd_watch_stream {
	etcd_watch_fn fn;
	void *arg;
	char *line; /* bytes of the object not complete yet */
	size_t len, cap;
	int created; /* etcd confirmed the watch */
	/* gathered from the piece being fed, for one call of fn */
	struct etcd_event *events;
	size_t n_events, cap_events;
	int64_t seen; /* the revision they reach; 0: nothing to deliver */
	char err[256];
};

void etcd_watch_stream_init(struct etcd_watch_stream *stream, etcd_watch_fn fn, void *arg);
/* 0 to go on; else why the watch ends: fn's non-zero value, -ERANGE
 * (compacted), -EHOSTUNREACH (etcd ended it), -EBADMSG, -ENOMEM. */
int etcd_watch_stream_feed(struct etcd_watch_stream *stream, const char *data, size_t len);
void etcd_watch_stream_free(struct etcd_watch_stream *stream);

#endif
