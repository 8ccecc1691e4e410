/*
 * The UAPI socket: the text protocol of wireguard.com/xplatform over
 * the AF_UNIX stream socket /var/run/wireguard/IFNAME.sock (wg_userspace.c
 * makes the userspace back end of it and the daemon behind it).
 *
 * A write is one "set=1" exchange, however many peers it carries (10,000
 * peers is ~1.3 MB), so a reconcile is a single transaction for the daemon;
 * it is formatted and sent WG_UAPI_CHUNK bytes at a time. An answer to
 * "get=1" is parsed as it arrives, line by line, each peer handed on as
 * soon as it is read: the daemon writes while we parse, and neither the
 * answer nor its peers need be whole in memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "wg_internal.h"
#include "wg_uapi.h"

#define UAPI_DIR "/var/run/wireguard"
/* A 10k-peer set takes well under a second; a daemon silent for this long is stuck. */
#define UAPI_TIMEOUT_SEC 30
/* An answer bigger than this is not a WireGuard device (~300 bytes a peer). */
#define UAPI_MAX_ANSWER (512u << 20)

/* --- formatting a set=1 request -------------------------------------------- */

/* Writes it all, across short writes. MSG_NOSIGNAL: a daemon that hangs up
 * early is an error to report, not a SIGPIPE to die of. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The text of a request: grown whole in memory, or, with a socket (fd >=
 * 0), sent whenever the next line would not fit in its WG_UAPI_CHUNK. */
struct sbuf {
	char *p;
	size_t len, cap;
	int err;
	int fd;
};

static void sb_reserve(struct sbuf *sb, size_t more)
{
	size_t cap = sb->cap ? sb->cap : 4096;
	char *p;

	if (sb->err || sb->len + more <= sb->cap)
		return;
	if (sb->fd >= 0 && sb->len) {
		sb->err = send_all(sb->fd, sb->p, sb->len);
		sb->len = 0;
		if (sb->err || more <= sb->cap)
			return;
	}
	while (cap < sb->len + more)
		cap *= 2;
	p = realloc(sb->p, cap);
	if (!p) {
		sb->err = -ENOMEM;
		return;
	}
	sb->p = p;
	sb->cap = cap;
}

static void sb_put(struct sbuf *sb, const char *s)
{
	size_t n = strlen(s);

	sb_reserve(sb, n);
	if (sb->err)
		return;
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
}

static void sb_key(struct sbuf *sb, const char *name, const wg_key key)
{
	char hex[WG_KEY_HEX_LEN];

	wg_key_to_hex(hex, key);
	sb_put(sb, name);
	sb_put(sb, hex);
	sb_put(sb, "\n");
}

static void sb_uint(struct sbuf *sb, const char *name, unsigned long value)
{
	char num[24];

	snprintf(num, sizeof(num), "%lu\n", value);
	sb_put(sb, name);
	sb_put(sb, num);
}

static void sb_endpoint(struct sbuf *sb, const union wg_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN], line[INET6_ADDRSTRLEN + 32];

	if (ep->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->in4.sin_addr, host, sizeof(host));
		snprintf(line, sizeof(line), "endpoint=%s:%u\n", host, ntohs(ep->in4.sin_port));
	} else if (ep->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->in6.sin6_addr, host, sizeof(host));
		if (ep->in6.sin6_scope_id)
			snprintf(line, sizeof(line), "endpoint=[%s%%%u]:%u\n", host,
			         ep->in6.sin6_scope_id, ntohs(ep->in6.sin6_port));
		else
			snprintf(line, sizeof(line), "endpoint=[%s]:%u\n", host,
			         ntohs(ep->in6.sin6_port));
	} else {
		return;
	}
	sb_put(sb, line);
}

static void sb_allowed_ip(struct sbuf *sb, const struct wg_allowed_ip *ip)
{
	char addr[INET6_ADDRSTRLEN], line[INET6_ADDRSTRLEN + 24];

	if ((ip->family != AF_INET && ip->family != AF_INET6) ||
	    !inet_ntop(ip->family, ip->family == AF_INET ? (const void *)&ip->ip4 : &ip->ip6, addr,
	               sizeof(addr))) {
		sb->err = sb->err ? sb->err : -EAFNOSUPPORT;
		return;
	}
	snprintf(line, sizeof(line), "allowed_ip=%s/%u\n", addr, ip->cidr);
	sb_put(sb, line);
}

static void sb_peer(struct sbuf *sb, const struct wg_peer *peer)
{
	sb_key(sb, "public_key=", peer->public_key);
	if (peer->flags & WG_PEER_REMOVE) {
		sb_put(sb, "remove=true\n");
		return;
	}
	if (peer->flags & WG_PEER_UPDATE_ONLY)
		sb_put(sb, "update_only=true\n");
	if (peer->flags & WG_PEER_HAS_PRESHARED_KEY)
		sb_key(sb, "preshared_key=", peer->preshared_key);
	sb_endpoint(sb, &peer->endpoint);
	if (peer->flags & WG_PEER_HAS_KEEPALIVE)
		sb_uint(sb, "persistent_keepalive_interval=", peer->persistent_keepalive);
	if (peer->flags & WG_PEER_REPLACE_ALLOWED)
		sb_put(sb, "replace_allowed_ips=true\n");
	for (size_t i = 0; i < peer->n_allowed_ips; i++)
		sb_allowed_ip(sb, &peer->allowed_ips[i]);
}

static void sb_set(struct sbuf *sb, const struct wg_device *dev)
{
	sb_put(sb, "set=1\n");
	if (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY)
		sb_key(sb, "private_key=", dev->private_key);
	if (dev->flags & WG_DEVICE_HAS_LISTEN_PORT)
		sb_uint(sb, "listen_port=", dev->listen_port);
	if (dev->flags & WG_DEVICE_HAS_FWMARK)
		sb_uint(sb, "fwmark=", dev->fwmark);
	if (dev->flags & WG_DEVICE_REPLACE_PEERS)
		sb_put(sb, "replace_peers=true\n");
	for (size_t i = 0; i < dev->n_peers; i++)
		sb_peer(sb, &dev->peers[i]);
	sb_put(sb, "\n");
}

int wg_uapi_format_set(const struct wg_device *dev, char **buf, size_t *len)
{
	struct sbuf sb = {.fd = -1};

	/* one reservation for the common case: ~140 bytes a peer and its first IP */
	sb_reserve(&sb, 256 + dev->n_peers * 192);
	sb_set(&sb, dev);
	if (sb.err) {
		if (sb.p)
			explicit_bzero(sb.p, sb.len);
		free(sb.p);
		return sb.err;
	}
	*buf = sb.p;
	*len = sb.len;
	return 0;
}

/* --- parsing a get=1 answer ------------------------------------------------ */

#define NO_KEY_HEX "0000000000000000000000000000000000000000000000000000000000000000"

static int parse_key(wg_key key, const char *value)
{
	return wg_key_from_hex(key, value);
}

static int parse_device_line(struct wg_device *dev, const char *key, const char *value)
{
	uint64_t n;

	if (!strcmp(key, "private_key")) {
		if (parse_key(dev->private_key, value))
			return -EINVAL;
		dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
		/* an all-zero key means "no key": it has no public key */
		if (!wg_key_is_zero(dev->private_key) &&
		    wg_key_public_from_private(dev->public_key, dev->private_key) == 0)
			dev->flags |= WG_DEVICE_HAS_PUBLIC_KEY;
	} else if (!strcmp(key, "listen_port")) {
		if (wg_parse_u64(value, UINT16_MAX, &n))
			return -EINVAL;
		dev->listen_port = (uint16_t)n;
		dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
	} else if (!strcmp(key, "fwmark")) {
		if (wg_parse_u64(value, UINT32_MAX, &n))
			return -EINVAL;
		dev->fwmark = (uint32_t)n;
		dev->flags |= WG_DEVICE_HAS_FWMARK;
	}
	return 0;
}

/* The peer's next allowed IP, in the reader's array (kept across peers). */
static int add_allowed_ip(struct wg_uapi_reader *r, const char *value)
{
	struct wg_allowed_ip ip;

	if (wg_allowed_ip_parse(&ip, value))
		return -EINVAL;
	if (r->peer.n_allowed_ips == r->ips_cap) {
		size_t cap = r->ips_cap ? r->ips_cap * 2 : 8;
		struct wg_allowed_ip *ips =
		    cap > SIZE_MAX / sizeof(*ips) ? NULL : realloc(r->ips, cap * sizeof(*ips));

		if (!ips)
			return -ENOMEM;
		r->ips = ips;
		r->ips_cap = cap;
	}
	r->ips[r->peer.n_allowed_ips++] = ip;
	return 0;
}

static int parse_peer_line(struct wg_uapi_reader *r, const char *key, const char *value)
{
	struct wg_peer *peer = &r->peer;
	uint64_t n;

	if (!strcmp(key, "preshared_key")) {
		/* wireguard-go writes one for every peer, zeros when there is
		 * none: that common case costs a compare, not a decode */
		if (!strcmp(value, NO_KEY_HEX))
			return 0;
		if (parse_key(peer->preshared_key, value))
			return -EINVAL;
		if (!wg_key_is_zero(peer->preshared_key))
			peer->flags |= WG_PEER_HAS_PRESHARED_KEY;
	} else if (!strcmp(key, "endpoint")) {
		return wg_endpoint_parse(&peer->endpoint, value);
	} else if (!strcmp(key, "persistent_keepalive_interval")) {
		if (wg_parse_u64(value, UINT16_MAX, &n))
			return -EINVAL;
		peer->persistent_keepalive = (uint16_t)n;
		peer->flags |= WG_PEER_HAS_KEEPALIVE;
	} else if (!strcmp(key, "allowed_ip")) {
		return add_allowed_ip(r, value);
	} else if (!strcmp(key, "last_handshake_time_sec")) {
		if (wg_parse_u64(value, INT64_MAX, &n))
			return -EINVAL;
		peer->last_handshake.tv_sec = (time_t)n;
	} else if (!strcmp(key, "last_handshake_time_nsec")) {
		if (wg_parse_u64(value, 999999999, &n))
			return -EINVAL;
		peer->last_handshake.tv_nsec = (long)n;
	} else if (!strcmp(key, "rx_bytes")) {
		if (wg_parse_u64(value, UINT64_MAX, &peer->rx_bytes))
			return -EINVAL;
	} else if (!strcmp(key, "tx_bytes")) {
		if (wg_parse_u64(value, UINT64_MAX, &peer->tx_bytes))
			return -EINVAL;
	}
	return 0;
}

/* errno=N: wireguard-go writes -N, the spec and others N; both mean N. */
static int parse_errno_value(const char *value, int64_t *out)
{
	uint64_t n;
	bool negative = value[0] == '-';

	if (wg_parse_u64(value + negative, 4095, &n))
		return -EINVAL;
	*out = (int64_t)n;
	return 0;
}

/* The peer being read is complete: hand it on. */
static int end_peer(struct wg_uapi_reader *r)
{
	if (!r->in_peer || !r->on_peer)
		return 0;
	r->peer.allowed_ips = r->peer.n_allowed_ips ? r->ips : NULL;
	return r->on_peer(&r->peer, r->arg);
}

static int parse_line(struct wg_uapi_reader *r, char *line)
{
	char *value = strchr(line, '=');

	if (!value)
		return -EINVAL;
	*value++ = '\0';
	if (!strcmp(line, "errno")) {
		r->have_errno = true;
		return parse_errno_value(value, &r->errno_value);
	}
	if (!strcmp(line, "public_key")) {
		memset(&r->peer, 0, sizeof(r->peer));
		r->in_peer = true;
		return parse_key(r->peer.public_key, value);
	}
	/* keys before the first public_key are the device's, after it the
	 * current peer's; a key of the wrong kind is unknown, hence skipped */
	if (!r->in_peer)
		return parse_device_line(r->dev, line, value);
	return parse_peer_line(r, line, value);
}

void wg_uapi_reader_init(struct wg_uapi_reader *r, struct wg_device *dev, wg_peer_fn on_peer,
                         void *arg)
{
	memset(r, 0, sizeof(*r));
	r->dev = dev;
	r->on_peer = on_peer;
	r->arg = arg;
}

/* What the reader says when on_peer refused a peer. */
static int peer_refused(int ret, char *err, size_t errlen)
{
	if (ret == -ENOMEM)
		return wg_err(err, errlen, ret, "out of memory reading the device");
	ret = ret < 0 ? ret : -ECANCELED;
	return wg_err(err, errlen, ret, "reading the peers of the device: %s", strerror(-ret));
}

/* The line in r->line (r->linelen bytes, without its newline) is whole:
 * 0 to go on, 1 at the empty line that ends the answer, or an error. */
static int take_line(struct wg_uapi_reader *r, char *err, size_t errlen)
{
	size_t n = r->linelen;
	int ret;

	r->linelen = 0;
	if (n == 0) {
		r->ended = true;
		ret = end_peer(r);
		r->in_peer = false;
		return ret ? peer_refused(ret, err, errlen) : 1;
	}
	if (memchr(r->line, '\0', n))
		return wg_err(err, errlen, -EPROTO, "UAPI answer: NUL in line %u", r->lineno);
	r->line[n] = '\0';
	/* a public key starts the next peer: the one before is complete */
	if (!strncmp(r->line, "public_key=", 11) && (ret = end_peer(r)))
		return peer_refused(ret, err, errlen);
	ret = parse_line(r, r->line);
	if (ret == -ENOMEM)
		return wg_err(err, errlen, ret, "out of memory reading the device");
	if (ret)
		return wg_err(err, errlen, -EPROTO, "UAPI answer: bad line %u (%.40s)", r->lineno,
		              r->line);
	return 0;
}

int wg_uapi_reader_feed(struct wg_uapi_reader *r, const char *buf, size_t len, size_t *used,
                        char *err, size_t errlen)
{
	size_t pos = 0;

	while (!r->ret && pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;

		if (r->linelen + n > WG_UAPI_MAX_LINE) {
			r->ret = wg_err(err, errlen, -EPROTO, "UAPI answer: line %u is too long",
			                r->lineno + 1);
			break;
		}
		memcpy(r->line + r->linelen, buf + pos, n);
		r->linelen += n;
		pos += n;
		if (!nl)
			break;
		pos++;
		r->lineno++;
		r->ret = take_line(r, err, errlen);
	}
	if (used)
		*used = pos;
	return r->ret;
}

int wg_uapi_reader_finish(struct wg_uapi_reader *r, char *err, size_t errlen)
{
	int ret = r->ret < 0 ? r->ret : 0;

	if (!ret && !r->ended)
		ret = r->linelen ? wg_err(err, errlen, -EPROTO, "UAPI answer cut in line %u",
		                          r->lineno + 1)
		                 : wg_err(err, errlen, -EPROTO, "UAPI answer is truncated");
	else if (!ret && !r->have_errno)
		ret = wg_err(err, errlen, -EPROTO, "UAPI answer has no errno line");
	else if (!ret && r->errno_value)
		ret = wg_err(err, errlen, -(int)r->errno_value, "the WireGuard daemon says: %s",
		             strerror((int)r->errno_value));
	free(r->ips);
	r->ips = NULL;
	r->ips_cap = 0;
	/* a preshared key may be in there */
	explicit_bzero(&r->peer, sizeof(r->peer));
	explicit_bzero(r->line, sizeof(r->line));
	r->ret = ret ? ret : 1;
	return ret;
}

/* The peer, copied into the device being read whole. */
static int keep_peer(const struct wg_peer *peer, void *arg)
{
	struct wg_device *dev = arg;
	struct wg_peer *p = wg_device_append_peer(dev);

	if (!p)
		return -ENOMEM;
	*p = *peer;
	p->allowed_ips = NULL;
	p->n_allowed_ips = 0;
	for (size_t i = 0; i < peer->n_allowed_ips; i++)
		if (wg_peer_append_allowed_ip(p, &peer->allowed_ips[i]))
			return -ENOMEM;
	return 0;
}

int wg_uapi_parse_get(const char *buf, size_t len, struct wg_device **out, char *err, size_t errlen)
{
	struct wg_uapi_reader r;
	struct wg_device *dev = calloc(1, sizeof(*dev));
	int ret;

	*out = NULL;
	if (!dev)
		return wg_err(err, errlen, -ENOMEM, "out of memory");
	wg_uapi_reader_init(&r, dev, keep_peer, dev);
	wg_uapi_reader_feed(&r, buf, len, NULL, err, errlen);
	ret = wg_uapi_reader_finish(&r, err, errlen);
	if (ret) {
		wg_device_free(dev);
		return ret;
	}
	*out = dev;
	return 0;
}

int wg_uapi_parse_errno(const char *buf, size_t len)
{
	int64_t value;
	char line[32];
	const char *nl = memchr(buf, '\n', len);
	size_t n = nl ? (size_t)(nl - buf) : 0;

	if (!nl || n < 7 || n >= sizeof(line) || memcmp(buf, "errno=", 6))
		return -EPROTO;
	memcpy(line, buf + 6, n - 6);
	line[n - 6] = '\0';
	if (parse_errno_value(line, &value))
		return -EPROTO;
	return -(int)value;
}

/* --- the socket ------------------------------------------------------------ */

int wg_uapi_socket_path(char *out, size_t outlen, const char *ifname)
{
	int n = snprintf(out, outlen, "%s/%s.sock", UAPI_DIR, ifname);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int uapi_connect(const char *ifname, int *out, char *err, size_t errlen)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = UAPI_TIMEOUT_SEC};
	int fd, ret;

	if (wg_uapi_socket_path(addr.sun_path, sizeof(addr.sun_path), ifname))
		return wg_err(err, errlen, -ENAMETOOLONG, "interface name too long");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return wg_err(err, errlen, -errno, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		close(fd);
		/* a missing or refused socket both mean: no daemon serves it */
		if (ret == -ECONNREFUSED)
			ret = -ENOENT;
		return wg_err(err, errlen, ret, "no WireGuard daemon answers on %s: %s",
		              addr.sun_path, strerror(-ret));
	}
	*out = fd;
	return 0;
}

/* Reads until the empty line that ends every answer: the daemon keeps the
 * connection open for another request, so end of file cannot be waited for. */
static int read_answer(int fd, char **out, size_t *outlen)
{
	size_t len = 0, cap = 16384;
	char *buf = malloc(cap), *p;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t from = len ? len - 1 : 0;
		ssize_t n;

		if (len == cap) {
			if (cap >= UAPI_MAX_ANSWER || !(p = realloc(buf, cap * 2))) {
				free(buf);
				return cap >= UAPI_MAX_ANSWER ? -EMSGSIZE : -ENOMEM;
			}
			buf = p;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int ret = n == 0 ? -EPROTO : errno == EAGAIN ? -ETIMEDOUT : -errno;

			free(buf);
			return ret;
		}
		len += (size_t)n;
		/* only the new bytes (and the one before them) can hold the end */
		if (buf[0] == '\n' || memmem(buf + from, len - from, "\n\n", 2)) {
			*out = buf;
			*outlen = len;
			return 0;
		}
	}
}

int wg_uapi_exchange(const char *ifname, const char *request, size_t len, char **answer,
                     size_t *answerlen, char *err, size_t errlen)
{
	int fd = -1, ret, sent;

	*answer = NULL;
	*answerlen = 0;
	ret = uapi_connect(ifname, &fd, err, errlen);
	if (ret)
		return ret;
	sent = send_all(fd, request, len);
	/* even if the write broke, the daemon may have said why before closing */
	ret = read_answer(fd, answer, answerlen);
	close(fd);
	if (ret) {
		ret = sent ? sent : ret;
		return wg_err(err, errlen, ret, "UAPI %.3s on %s failed: %s", request, ifname,
		              strerror(-ret));
	}
	return 0;
}

/* Reads the answer on fd into the reader, a chunk at a time, as the
 * daemon writes it, up to the empty line (the daemon keeps the connection
 * open for another request) or a fault of the answer, which the reader
 * keeps. Returns what broke the socket, if anything did. */
static int read_into(int fd, struct wg_uapi_reader *r, char *err, size_t errlen)
{
	char buf[WG_UAPI_CHUNK];
	int ret = 0;

	while (!r->ret) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n == 0 ? -EPROTO : errno == EAGAIN ? -ETIMEDOUT : -errno;
			break;
		}
		wg_uapi_reader_feed(r, buf, (size_t)n, NULL, err, errlen);
	}
	/* a private or preshared key may have passed through */
	explicit_bzero(buf, sizeof(buf));
	return ret;
}

/* One request, sent by send_request(fd, arg), and its answer read into r,
 * which is then finished: 0, the answer's fault or errno, or what broke
 * the exchange. */
static int uapi_request(const char *ifname, int (*send_request)(int fd, const void *arg),
                        const void *arg, struct wg_uapi_reader *r, const char *what, char *err,
                        size_t errlen)
{
	int fd = -1, sent, broken;

	broken = uapi_connect(ifname, &fd, err, errlen);
	if (broken) {
		wg_uapi_reader_finish(r, NULL, 0);
		return broken;
	}
	sent = send_request(fd, arg);
	/* even if the write broke, the daemon may have said why before closing */
	broken = read_into(fd, r, err, errlen);
	close(fd);
	if (broken) {
		wg_uapi_reader_finish(r, NULL, 0);
		broken = sent ? sent : broken;
		return wg_err(err, errlen, broken, "UAPI %s on %s failed: %s", what, ifname,
		              strerror(-broken));
	}
	return wg_uapi_reader_finish(r, err, errlen);
}

static int send_set(int fd, const void *arg)
{
	struct sbuf sb = {.fd = fd, .cap = WG_UAPI_CHUNK, .p = malloc(WG_UAPI_CHUNK)};

	if (!sb.p)
		return -ENOMEM;
	sb_set(&sb, arg);
	if (!sb.err)
		sb.err = send_all(fd, sb.p, sb.len);
	/* the private key may have been in there */
	explicit_bzero(sb.p, sb.cap);
	free(sb.p);
	return sb.err;
}

int wg_uapi_set(const struct wg_device *dev, char *err, size_t errlen)
{
	struct wg_device answer = {0};
	struct wg_uapi_reader r;
	int ret;

	/* the answer is "errno=N" and the empty line: a get's without peers */
	wg_uapi_reader_init(&r, &answer, NULL, NULL);
	ret = uapi_request(dev->name, send_set, dev, &r, "set", err, errlen);
	if (ret == -EPROTO && r.ended)
		wg_err(err, errlen, ret, "UAPI set on %s: unexpected answer", dev->name);
	else if (ret && r.ended)
		wg_err(err, errlen, ret, "UAPI set on %s refused: %s", dev->name, strerror(-ret));
	return ret;
}

static int send_get(int fd, const void *arg)
{
	static const char request[] = "get=1\n\n";

	(void)arg;
	return send_all(fd, request, sizeof(request) - 1);
}

int wg_uapi_get_peers(const char *ifname, wg_peer_fn on_peer, void *arg, char *err, size_t errlen)
{
	struct wg_device dev = {0};
	struct wg_uapi_reader r;
	int ret;

	wg_uapi_reader_init(&r, &dev, on_peer, arg);
	ret = uapi_request(ifname, send_get, NULL, &r, "get", err, errlen);
	explicit_bzero(&dev, sizeof(dev));
	return ret;
}

int wg_uapi_get(const char *ifname, struct wg_device **out, char *err, size_t errlen)
{
	struct wg_device *dev = calloc(1, sizeof(*dev));
	struct wg_uapi_reader r;
	int ret;

	*out = NULL;
	if (!dev)
		return wg_err(err, errlen, -ENOMEM, "out of memory");
	wg_uapi_reader_init(&r, dev, keep_peer, dev);
	ret = uapi_request(ifname, send_get, NULL, &r, "get", err, errlen);
	if (ret) {
		wg_device_free(dev);
		return ret;
	}
	snprintf(dev->name, sizeof(dev->name), "%s", ifname);
	*out = dev;
	return 0;
}
