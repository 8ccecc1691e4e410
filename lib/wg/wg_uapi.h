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

/* Parses the answer to "get=1": key=value lines ending with errno=N and an
 * empty line. Unknown keys are skipped; bad values, overlong lines, a missing
 * errno are -EPROTO; errno=N other than 0 is returned as -N. */
int wg_uapi_parse_get(const char *buf, size_t len, struct wg_device **out, char *err,
                      size_t errlen);

/* Parses the answer to "set=1": "errno=N\n\n". Returns -N, or -EPROTO. */
int wg_uapi_parse_errno(const char *buf, size_t len);

/* One request over the socket of IFNAME's daemon and its whole answer, up
 * to the empty line that ends it (*answer malloc'ed, not NUL-terminated).
 * The one exchange under set and get; bench_wg times wireguard-go by it. */
int wg_uapi_exchange(const char *ifname, const char *request, size_t len, char **answer,
                     size_t *answerlen, char *err, size_t errlen);

/* One request over the socket of IFNAME's daemon: the back end's set and get
 * (wg_userspace.c puts them together with the daemon's process). */
int wg_uapi_set(const struct wg_device *dev, char *err, size_t errlen);
int wg_uapi_get(const char *ifname, struct wg_device **out, char *err, size_t errlen);

#endif
