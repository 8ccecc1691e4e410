/*
 * The cross-platform UAPI text protocol (wireguard.com/xplatform), split from
 * its socket so that tests and fuzzers can feed it buffers.
 */
#ifndef MESHGATE_WG_UAPI_H
#define MESHGATE_WG_UAPI_H

#include "wg.h"

/* Longest line we accept in an answer; a real one is under 120 bytes. */
#define WG_UAPI_MAX_LINE 1024

/* /var/run/wireguard/IFNAME.sock; -ENAMETOOLONG if ifname does not fit. */
int wg_uapi_socket_path(char *out, size_t outlen, const char *ifname);

/* The whole "set=1 ... \n\n" request for dev, in one malloc'ed buffer. */
int wg_uapi_format_set(const struct wg_device *dev, char **buf, size_t *len);

/* Called with each peer of an answer as soon as its last line is read; the
 * peer (and its allowed IPs) is valid during the call only. Nonzero stops
 * the read and is returned. */
typedef int (*wg_peer_fn)(const struct wg_peer *peer, void *arg);

/* The reader of an answer to "get=1", fed its bytes as they arrive, in
 * pieces of any size: key=value lines ending with errno=N and an empty
 * line. The device's own values go into *dev (its peers are not touched);
 * each peer goes to on_peer when complete, so that nothing of the answer
 * is kept but one line and one peer. Unknown keys are skipped; bad values,
 * overlong lines, a missing errno are -EPROTO; errno=N other than 0 is -N.
 * A reader that failed or ended stays so. */
struct wg_uapi_reader {
	struct wg_device *dev;
	wg_peer_fn on_peer;
	void *arg;
	struct wg_peer peer;       /* the one being read; allowed_ips is ips */
	struct wg_allowed_ip *ips; /* reused from peer to peer */
	size_t ips_cap;
	bool in_peer, have_errno, ended;
	int64_t errno_value;
	unsigned lineno;
	size_t linelen;
	char line[WG_UAPI_MAX_LINE + 1];
	int ret; /* the first error, or 1 once the empty line is read */
};

void wg_uapi_reader_init(struct wg_uapi_reader *r, struct wg_device *dev, wg_peer_fn on_peer,
                         void *arg);
/* Reads buf: 0 when it wants more, 1 when the answer ended (*used tells how
 * many bytes of buf were the answer's), or a negative errno, with err. */
int wg_uapi_reader_feed(struct wg_uapi_reader *r, const char *buf, size_t len, size_t *used,
                        char *err, size_t errlen);
/* The end of the bytes: 0 if the answer was whole and said errno=0, else
 * its error (a cut answer is -EPROTO). Frees what the reader holds. */
int wg_uapi_reader_finish(struct wg_uapi_reader *r, char *err, size_t errlen);

/* Parses a whole answer to "get=1" (see struct wg_uapi_reader) into a
 * device with its peers. */
int wg_uapi_parse_get(const char *buf, size_t len, struct wg_device **out, char *err,
                      size_t errlen);

/* Parses the answer to "set=1": "errno=N\n\n". Returns -N, or -EPROTO. */
int wg_uapi_parse_errno(const char *buf, size_t len);

/* One request over the socket of IFNAME's daemon and its whole answer, up
 * to the empty line that ends it (*answer malloc'ed, not NUL-terminated).
 * For tests and bench_wg, which times wireguard-go by it; set and get
 * stream instead. */
int wg_uapi_exchange(const char *ifname, const char *request, size_t len, char **answer,
                     size_t *answerlen, char *err, size_t errlen);

/* One request over the socket of IFNAME's daemon: the back end's set, get
 * and get_peers (wg_userspace.c puts them together with the daemon's
 * process). A set is formatted and sent in pieces of WG_UAPI_CHUNK bytes,
 * an answer parsed as it comes in pieces of that size: however many
 * peers, neither side is ever whole in memory. */
#define WG_UAPI_CHUNK 65536
int wg_uapi_set(const struct wg_device *dev, char *err, size_t errlen);
int wg_uapi_get(const char *ifname, struct wg_device **out, char *err, size_t errlen);
/* The device's peers, each to on_peer as it is read (see wg_peer_fn). */
int wg_uapi_get_peers(const char *ifname, wg_peer_fn on_peer, void *arg, char *err, size_t errlen);

#endif
