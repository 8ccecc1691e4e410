/* dns: the gateway's name server. The plugin's internal header (names
 * start with dns_); docs/dns.md describes the behaviour.
 *
 * Threads: the plugin's own thread (the actor) owns everything that
 * changes: settings, the records, the device table, TCP, forwarding. Each
 * UDP listen socket has a worker thread of its own that answers the hot
 * path (a blocking recvmmsg/sendmmsg loop). The two share one struct
 * dns_server: the current index and ACL behind a read-write lock, counters
 * as atomics, and a queue of queries the workers hand over for forwarding. */
#ifndef DNS_DNS_H
#define DNS_DNS_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <meshgate/meshgate.h>

#define DNS_DB "dns"
/* This node's own: where its clients find its server (in a cluster each
 * node has its own listen addresses; `dns` is shared). */
#define DNS_NODE_DB       "dns_node"
#define DNS_RECORD_PREFIX "record/"
#define DNS_SERVER_KEY    "server"
#define DNS_NS_LABEL      "ns" /* ns.ZONE: the zone's name server (NS, SOA MNAME) */
#define DNS_NAME_MAX      255  /* wire length of a name */
#define DNS_TEXT_MAX      1024 /* a name as text, \DDD escapes included */
#define DNS_LABEL_MAX     63
#define DNS_HEADER        12
#define DNS_UDP_PAYLOAD   1232 /* our EDNS payload size: no fragments on common paths */
#define DNS_TCP_MAX       65535
#define DNS_RR_PER_NAME   256 /* addresses one name may have */
#define DNS_MAX_UPSTREAMS 8
#define DNS_MAX_PREFIXES  32
#define DNS_MAX_LISTEN    8
#define DNS_MAX_PENDING   256 /* forwarded queries in flight (one socket each) */
#define DNS_MAX_HANDOFF   256 /* queries queued by the UDP workers for forwarding */
#define DNS_MAX_TCP       64  /* client connections */
#define DNS_TCP_IDLE_MS   10000
#define DNS_TCP_INFLIGHT  16 /* forwarded queries per connection */
#define DNS_SWEEP_MS      100

enum { DNS_T_A = 1, DNS_T_NS = 2, DNS_T_SOA = 6, DNS_T_PTR = 12, DNS_T_AAAA = 28 };
enum { DNS_T_OPT = 41, DNS_T_IXFR = 251, DNS_T_AXFR = 252, DNS_T_ANY = 255 };
enum { DNS_C_IN = 1 };
enum {
	DNS_R_NOERROR = 0,
	DNS_R_FORMERR = 1,
	DNS_R_SERVFAIL = 2,
	DNS_R_NXDOMAIN = 3,
	DNS_R_NOTIMP = 4,
	DNS_R_REFUSED = 5,
	DNS_R_BADVERS = 16,
};

/* ---- names (dns_name.c) ---- */

/* Text ("gitlab", "corp.internal.", "a.b") to lowercase wire format. Only
 * hostname labels: 1-63 of [a-z0-9_-] (any case), not starting or ending
 * with '-'. 0 or -EINVAL. */
int dns_name_from_text(const char *text, uint8_t *wire, size_t *len);
/* A record's name as given ("wiki", "Wiki.corp.internal.") made relative
 * to the zone, lowercase, checked. */
int dns_relative_name(const char *given, const char *zone_text, char *out, size_t outlen);
/* Wire to text without the final dot; unprintable bytes as \DDD. */
void dns_name_to_text(const uint8_t *wire, size_t len, char *out, size_t outlen);
/* Number of labels of a wire name. */
int dns_name_labels(const uint8_t *wire, size_t len);
/* a + b: b is the parent (zone). -ENAMETOOLONG */
int dns_name_concat(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t *out,
                    size_t *outlen);
/* The device's label: its name made a hostname label (lowercase, [a-z0-9-],
 * runs of anything else as one '-', at most 63), else the user's, else
 * "device". */
void dns_device_label(const char *name, const char *user, char out[DNS_LABEL_MAX + 1]);
/* The label of a device that lost its name to another: LABEL-ID. */
void dns_device_fallback(const char *label, const char *id, char out[DNS_LABEL_MAX + 1]);
/* "x.y.z.w.in-addr.arpa" or the nibbles of ip6.arpa, as wire. */
int dns_reverse_name(int family, const void *addr, uint8_t *wire, size_t *len);
/* 32-bit FNV-1a: the index's hash of a lowercase wire name. */
static inline uint32_t dns_hash(const uint8_t *name, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ name[i]) * 16777619u;
	return h;
}

/* ---- addresses (dns_addr.c) ---- */

struct dns_prefix {
	int family;
	uint8_t addr[16];
	int len;
};

/* "IP", "IP:PORT", "[IPv6]:PORT", "IPv6" -> sockaddr; port when absent. */
int dns_sockaddr_parse(const char *text, uint16_t default_port, struct sockaddr_storage *ss,
                       socklen_t *sslen);
void dns_sockaddr_text(const struct sockaddr *sa, char *out, size_t len);
/* An address alone ("10.0.0.2", "10.0.0.2/32", "fd00::2"): family + bytes. */
int dns_ip_parse(const char *text, int *family, uint8_t addr[16]);
/* "10.0.0.0/24", "fd00::/64", or a bare address (a host prefix). */
int dns_prefix_parse(const char *text, struct dns_prefix *p);
/* Does prefix p hold this address (an IPv4-mapped IPv6 counts as IPv4)? */
int dns_prefix_has(const struct dns_prefix *p, const struct sockaddr *sa);

/* ---- the index: every name the server answers (dns_index.c) ---- */

enum { DNS_B_A, DNS_B_AAAA, DNS_B_PTR, DNS_B_NS, DNS_B_SOA, DNS_B_COUNT };

/* The RRs of one type at one name: each is stored as rdlength and rdata
 * (names uncompressed); the owner, type, class and TTL, the same for every
 * RR of a name, are written while answering (dns_block_write), which
 * keeps 10 bytes an RR out of memory. A view into a node. */
struct dns_block {
	const uint8_t *wire;
	uint32_t len;
	uint16_t count;
	uint16_t type;
	/* or, when table is set, the PTRs of IPv4 address `addr` in the
	 * index's address table (wire unused; len and count as above) */
	const struct dns_index *table;
	uint32_t addr;
};

#define DNS_NODE_APEX 0x1

/* A name of the index: its header, its name, the length and count of each
 * of its non-empty blocks and their RRs lie together in one allocation
 * (a device's name is about 80 bytes), so a lookup touches a slot and
 * one or two cache lines. */
struct dns_node {
	uint32_t hash;
	uint8_t len;
	uint8_t flags;
	uint8_t sets;      /* bit b: block b has RRs */
	uint32_t children; /* names one label below it */
	uint16_t zone;     /* the apex above it (itself for an apex): see dns_node_zone */
	/* lowercase wire; then for each set bit, in block order, the block's
	 * length and count (16 bits each); then their RRs */
	uint8_t name[];
};

/* Block b (DNS_B_*) of a node; count 0 when it has none. */
struct dns_block dns_node_block(const struct dns_node *n, int b);
/* The bytes the block's RRs take in a message, and the RRs written there
 * (owner: a pointer C0 0C to the question's name); returns the length. */
size_t dns_block_wire_len(const struct dns_block *b);
size_t dns_block_write(const struct dns_block *b, uint32_t ttl, uint8_t *out);
/* The RRs of a block one by one (*at starts at 0): 1 and the RR's rdata,
 * or 0 past the last. */
int dns_block_next(const struct dns_block *b, size_t *at, const uint8_t **rdata, size_t *rdlen);

struct dns_index;

/* An index is built (zones first, then RRs) and frozen; then only
 * dns_index_set changes it (docs/dns.md). */
struct dns_index *dns_index_new(uint32_t ttl, uint32_t serial);
/* Room for `names` without growing (a build that knows its size). */
int dns_index_reserve(struct dns_index *idx, size_t names);
void dns_index_free(struct dns_index *idx);
/* A zone we are authoritative for: SOA and NS at `apex`; the name server
 * is ns.`ns_zone` and the mailbox hostmaster.`ns_zone`. Before any name
 * below it. */
int dns_index_zone(struct dns_index *idx, const uint8_t *apex, size_t len, const uint8_t *ns_zone,
                   size_t ns_len);
/* One RR (duplicates are ignored). Empty non-terminals between the name
 * and its zone's apex are created. -E2BIG past DNS_RR_PER_NAME. The PTR
 * of an IPv4 address (d.c.b.a.in-addr.arpa) to a name that has that
 * address (an A RR, added first) is kept in the address table rather
 * than as a node: the name itself is the PTR's rdata. */
int dns_index_add(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t type,
                  const uint8_t *rdata, size_t rdlen);
/* Ends the building: add and zone refuse afterwards. */
int dns_index_freeze(struct dns_index *idx);
/* A change of a published index (the server's write lock held): the RR is
 * added (present) or taken away, in O(1) expected time; a name left with
 * no RRs and nothing below goes, with the empty non-terminals above it.
 * The apexes' RRs do not change (-EBUSY). */
int dns_index_set(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t type,
                  const uint8_t *rdata, size_t rdlen, int present);
/* The serial of every SOA (a published index: the write lock held). */
void dns_index_set_serial(struct dns_index *idx, uint32_t serial);
/* Every name, in no order (tests compare indexes with it). */
void dns_index_foreach(const struct dns_index *idx, void (*fn)(const struct dns_node *n, void *arg),
                       void *arg);
/* Lookups. */
/* The apex of the zone above a node (the node itself for an apex), or NULL. */
const struct dns_node *dns_node_zone(const struct dns_index *idx, const struct dns_node *n);
const struct dns_node *dns_index_find(const struct dns_index *idx, const uint8_t *name, size_t len,
                                      uint32_t hash);
/* Prefetches the slot of `hash`, or (node) the node it points to: a batch
 * of queries looks its names up in passes, each miss overlapping others. */
void dns_index_prefetch(const struct dns_index *idx, uint32_t hash, int node);
/* The PTRs of the address table at `name` (count 0: none, or not the
 * reverse name of an IPv4 address). */
struct dns_block dns_index_ptrs(const struct dns_index *idx, const uint8_t *name, size_t len);
/* Every PTR of the address table, in no order (tests compare with it). */
void dns_index_foreach_ptr(const struct dns_index *idx,
                           void (*fn)(uint32_t addr, const struct dns_node *target, void *arg),
                           void *arg);
/* The apex of the zone holding `name` (looked up suffix by suffix), or NULL. */
const struct dns_node *dns_index_zone_of(const struct dns_index *idx, const uint8_t *name,
                                         size_t len);
size_t dns_index_names(const struct dns_index *idx);
uint32_t dns_index_serial(const struct dns_index *idx);
uint32_t dns_index_ttl(const struct dns_index *idx);

/* ---- a query, decoded (dns_wire.c by hand, dns_ldns.c with ldns) ---- */

struct dns_query {
	uint16_t id;
	uint8_t rd, cd;
	uint8_t qname[DNS_NAME_MAX]; /* lowercase */
	uint8_t qname_len;
	uint32_t qhash;
	uint16_t qtype, qclass;
	const uint8_t *question; /* the question as received (name, type, class) */
	size_t question_len;
	uint8_t edns, edns_version, edns_do;
	uint16_t edns_size;
};

/* What the server does with a query (dns_engine.c). */
struct dns_answer {
	uint8_t rcode; /* may be DNS_R_BADVERS (extended) */
	uint8_t aa;
	uint8_t forward; /* not ours: the caller forwards it upstream */
	uint8_t nblocks;
	struct dns_block blocks[DNS_B_COUNT + 1]; /* the PTRs: the table's, the node's */
	const struct dns_node *soa;               /* apex whose SOA goes to the authority section */
	uint32_t ttl;                             /* of every RR (the index's) */
};

/* Settings the answering code reads (a snapshot under the server's lock). */
struct dns_view {
	const struct dns_index *index;
	int can_forward; /* upstreams are configured: RA, and forward what is not ours */
	int fast_path;   /* the hand-written decoder/encoder; 0: everything through ldns */
};

enum dns_verdict { DNS_DROP, DNS_REPLY, DNS_FORWARD };

/* The hand-written decoder of the common query: one question, no answer
 * or authority records, at most one OPT, no compression, nothing after.
 * 0 when it took the query; -1 for anything else (ldns decides). */
int dns_query_parse(const uint8_t *pkt, size_t len, struct dns_query *q);
/* The hand-written encoder: the response to q within `limit` bytes (TC
 * and no answers when it does not fit). Returns its length. */
size_t dns_encode(const struct dns_query *q, const struct dns_answer *a, int ra, uint8_t *out,
                  size_t limit);
/* The UDP payload limit of a query's response. */
static inline size_t dns_udp_limit(const struct dns_query *q)
{
	if (!q->edns || q->edns_size <= 512)
		return 512;
	return q->edns_size < DNS_UDP_PAYLOAD ? q->edns_size : DNS_UDP_PAYLOAD;
}

void dns_resolve(const struct dns_view *v, const struct dns_query *q, struct dns_answer *a);

/* A query in, the verdict out; on DNS_REPLY the response is in out
 * (cap >= DNS_UDP_PAYLOAD for UDP, DNS_TCP_MAX for TCP). */
enum dns_verdict dns_serve(const struct dns_view *v, const uint8_t *pkt, size_t len, int tcp,
                           uint8_t *out, size_t cap, size_t *outlen);
/* The same for a query dns_query_parse() took. */
enum dns_verdict dns_serve_query(const struct dns_view *v, const struct dns_query *q, int tcp,
                                 uint8_t *out, size_t cap, size_t *outlen);
/* The same through ldns only (the reference, and the fallback of the
 * hand-written decoder). */
enum dns_verdict dns_serve_ldns(const struct dns_view *v, const uint8_t *pkt, size_t len, int tcp,
                                uint8_t *out, size_t cap, size_t *outlen);
/* A response with `rcode` and no answer to a query (SERVFAIL when no
 * upstream answers); 0 when the query does not parse. */
size_t dns_error_reply(const uint8_t *query, size_t len, int rcode, int ra, uint8_t *out,
                       size_t cap);
/* An upstream's reply too large for a UDP client of ours, cut to its
 * header and question with TC set: the client asks again over TCP. */
size_t dns_truncate_reply(const uint8_t *reply, size_t len, uint8_t *out, size_t cap);
/* Question of a query (lowercase name, type, class) for matching replies. */
struct dns_question {
	uint8_t name[DNS_NAME_MAX];
	size_t len;
	uint16_t type, qclass;
};
int dns_query_question(const uint8_t *pkt, size_t len, struct dns_question *q);
/* An upstream's reply: the id, QR, one question equal to q. Returns its
 * rcode, or -EBADMSG. */
int dns_reply_check(const uint8_t *pkt, size_t len, uint16_t id, const struct dns_question *q);

/* ---- counters ---- */

struct dns_counters {
	_Atomic uint64_t udp, tcp, answered, nxdomain, forwarded, servfail, refused_source, formerr,
	    truncated, dropped, upstream_timeouts;
};

/* ---- what the plugin thread and the UDP workers share (dns_udp.c) ---- */

struct dns_acl {
	struct dns_prefix prefix[DNS_MAX_PREFIXES];
	size_t n;
};
int dns_acl_allows(const struct dns_acl *acl, const struct sockaddr *sa);

/* A query a worker hands to the plugin thread to forward. */
struct dns_handoff {
	struct dns_handoff *next;
	int fd; /* the listen socket it came in on, for the reply */
	struct sockaddr_storage from;
	socklen_t fromlen;
	struct in6_pktinfo dst; /* wildcard sockets: the address it was sent to */
	int dst_family;         /* 0: none */
	size_t len;
	uint8_t data[];
};

struct dns_server {
	pthread_rwlock_t lock; /* index, acl, can_forward, fast_path */
	struct dns_index *index;
	struct dns_acl acl;
	int can_forward, fast_path;
	pthread_mutex_t qlock;
	struct dns_handoff *qhead, *qtail;
	size_t qlen;
	int evfd; /* written when the queue gets an item */
	struct dns_counters count;
};

struct dns;

/* Something in the plugin thread's epoll set. */
struct dns_io {
	void (*fn)(struct dns_io *io, uint32_t events);
	int fd;
	struct dns *d;
};

struct dns_listener {
	struct dns_io io; /* the TCP listen socket in the plugin thread's epoll set */
	char text[96];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int wildcard;
	int udp, tcp;
	pthread_t thread;
	int running;
	atomic_int stop;
	struct dns_server *srv;
};

int dns_server_init(struct dns_server *srv, char *err, size_t errlen);
void dns_server_destroy(struct dns_server *srv);
/* Opens both sockets (IP_FREEBIND: the address may not exist yet). */
int dns_listener_open(struct dns_listener *l, char *err, size_t errlen);
int dns_listener_start(struct dns_listener *l, struct dns_server *srv, char *err, size_t errlen);
void dns_listener_close(struct dns_listener *l);
/* Sends a datagram from a listen socket (the source pinned on wildcards). */
void dns_udp_send(int fd, const struct sockaddr *to, socklen_t tolen, int dst_family,
                  const struct in6_pktinfo *dst, const uint8_t *data, size_t len);
/* Takes the queue of hand-offs (the caller frees each). */
struct dns_handoff *dns_handoff_take(struct dns_server *srv);

/* ---- the devices' names (dns_names.c) ---- */

enum { DNS_NAMED_NONE, DNS_NAMED_LABEL, DNS_NAMED_FALLBACK };

struct dns_claim;

/* An active device with an address. */
struct dns_dev {
	struct dns_dev *next; /* in the table by id */
	uint32_t hash;
	int8_t named; /* DNS_NAMED_*: which of its names it has */
	uint8_t family;
	uint8_t addr[16];
	int64_t created;
	struct dns_claim *label;    /* LABEL */
	struct dns_claim *fallback; /* LABEL-ID, only while it does not have LABEL */
	char id[];                  /* then the user (dns_dev_user) */
};

/* A device as the state has it. */
struct dns_dev_info {
	const char *id, *label, *user;
	int64_t created;
	int family;
	uint8_t addr[16];
};

/* A device's name (named: DNS_NAMED_LABEL or _FALLBACK) went (present 0)
 * or came (1); within one change the names that went come first. */
typedef void (*dns_renamed_fn)(const struct dns_dev *dev, int named, int present, void *arg);

struct dns_names;
struct dns_names *dns_names_new(void);
void dns_names_free(struct dns_names *t);
void dns_names_clear(struct dns_names *t);
size_t dns_names_devices(const struct dns_names *t);
/* A device added or changed, or taken away: fn hears of every name that
 * changed. 0; 1 when the names had to be settled whole (the caller
 * rebuilds); -ENOMEM (nothing changed). */
int dns_names_put(struct dns_names *t, const struct dns_dev_info *info, dns_renamed_fn fn,
                  void *arg);
int dns_names_del(struct dns_names *t, const char *id, dns_renamed_fn fn, void *arg);
/* The service names (an object's keys), which win over devices; every
 * device's name is settled again (no fn: the caller rebuilds). */
int dns_names_services(struct dns_names *t, json_t *names);
void dns_names_settle_all(struct dns_names *t);
/* The text of a device's name, NULL for none. */
const char *dns_dev_name(const struct dns_dev *dev, int named);
const char *dns_dev_user(const struct dns_dev *dev);
void dns_names_foreach(const struct dns_names *t, void (*fn)(const struct dns_dev *dev, void *arg),
                       void *arg);

/* ---- the plugin ---- */

struct dns_settings {
	json_t *listen;  /* array of strings; NULL: the VPN address (wg/server), followed */
	json_t *records; /* array of {name, address} */
	uint8_t zone[DNS_NAME_MAX];
	size_t zone_len;
	char zone_text[DNS_TEXT_MAX];
	struct sockaddr_storage upstream[DNS_MAX_UPSTREAMS];
	socklen_t upstream_len[DNS_MAX_UPSTREAMS];
	size_t nupstream;
	struct dns_prefix allow[DNS_MAX_PREFIXES / 2];
	size_t nallow;
	uint32_t ttl;
	unsigned upstream_timeout_ms;
	int fast_path;
};

struct dns_fwd;
struct dns_tcp;

struct dns {
	mg_ctx *ctx;
	struct dns_settings cfg;
	struct dns_server srv;
	int srv_ready;
	struct dns_listener *listeners[DNS_MAX_LISTEN];
	size_t nlisteners;
	int epfd;
	struct dns_io handoff_io;
	/* the sources of the index; the databases stay the truth */
	struct dns_names *devices; /* the active devices and their names */
	json_t *runtime;           /* record name -> [address, ...] (db `dns`) */
	int have_vpn;
	struct dns_prefix vpn;
	char vpn_host[INET6_ADDRSTRLEN]; /* the gateway's own VPN address; "" unknown */
	json_t *listening;               /* the listen addresses open now (strings) */
	json_t *ns_addresses;            /* ns.ZONE's addresses: where clients ask */
	uint32_t serial;
	int rebuild_timer;
	int sweep_timer;
	struct dns_fwd *fwd;
	struct dns_tcp *tcp;
};

/* settings (dns.c) */
int dns_settings_load(json_t *cfg, struct dns_settings *s, char *err, size_t errlen);
void dns_settings_free(struct dns_settings *s);

/* the index from the settings, the runtime records and the devices
 * (dns_records.c); swaps it in under the lock */
int dns_rebuild(struct dns *d);
/* The index of the sources now, built whole (NULL on failure, logged). */
struct dns_index *dns_build(struct dns *d, uint32_t serial);
/* soon: coalesces the events of one loop turn into one rebuild */
void dns_rebuild_soon(struct dns *d);
int dns_sources_load(struct dns *d);
void dns_device_changed(mg_ctx *ctx, const char *topic, json_t *payload, void *arg);
void dns_records_changed(mg_ctx *ctx, const char *topic, json_t *payload, void *arg);
void dns_wg_changed(mg_ctx *ctx, const char *topic, json_t *payload, void *arg);
int dns_vpn_load(struct dns *d);
/* The listen addresses of settings s: the configured ones, else the VPN
 * address (wg/server) on port 53, else none yet. A new reference. */
json_t *dns_listen_wanted(const struct dns *d, const struct dns_settings *s);
/* Opens the listen addresses of settings s when they changed (the running
 * ones stay on failure) and sets the name server's addresses from them;
 * the caller rebuilds the index and publishes dns_node/server. */
int dns_listen_update(struct dns *d, const struct dns_settings *s);
/* Where clients find the server: each specific listen address, and the
 * VPN address when a wildcard on port 53 covers it. A new reference. */
json_t *dns_server_addresses(const struct dns *d);
void dns_publish_server(struct dns *d);
json_t *dns_svc_add(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *dns_svc_del(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *dns_svc_list(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *dns_svc_stats(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *dns_svc_metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg);

/* the plugin thread's epoll set (dns.c) */
int dns_io_add(struct dns *d, struct dns_io *io, uint32_t events);
int dns_io_mod(struct dns *d, struct dns_io *io, uint32_t events);
void dns_io_del(struct dns *d, struct dns_io *io);
/* the sweep timer runs while something may time out */
void dns_sweep_needed(struct dns *d);

/* forwarding (dns_forward.c) */
struct dns_fwd *dns_fwd_new(void);
void dns_fwd_free(struct dns *d);
/* A query to forward for a UDP client (h is taken) or a TCP one. */
void dns_fwd_udp(struct dns *d, struct dns_handoff *h);
int dns_fwd_tcp(struct dns *d, uint64_t conn_id, const uint8_t *query, size_t len);
/* Timeouts; returns the number still pending. */
size_t dns_fwd_sweep(struct dns *d, uint64_t now_ms);
size_t dns_fwd_pending(struct dns *d);

/* TCP clients (dns_tcp.c) */
struct dns_tcp *dns_tcp_new(void);
void dns_tcp_free(struct dns *d);
void dns_tcp_accept(struct dns *d, int listen_fd);
/* A forwarded answer for connection `id` (gone: dropped). */
void dns_tcp_reply(struct dns *d, uint64_t id, const uint8_t *data, size_t len);
size_t dns_tcp_sweep(struct dns *d, uint64_t now_ms);

/* A snapshot of the view for the plugin thread (it is the only writer, so
 * it reads without the lock). */
static inline struct dns_view dns_view_of(struct dns_server *srv)
{
	struct dns_view v = {srv->index, srv->can_forward, srv->fast_path};
	return v;
}

#endif
