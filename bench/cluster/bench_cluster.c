/* The cluster's write path and its propagation, on three gateways sharing
 * their state through a three-member etcd (bench/cluster/run.sh sets them
 * up in namespaces and preloads the devices).
 *
 * 1. Onboardings per second: CLIENTS clients spread over the three APIs,
 *    each onboarding the client's redeem then register over HTTPS (as
 *    bench_onboarding does), with p50/p99. Against it, in the same rounds
 *    (who goes first alternates): etcd's own rate of redeem-shaped
 *    transactions (one key compared absent, three keys of a record's size
 *    put) through its JSON gateway with lib/etcd, from as many threads,
 *    spread over the three members. Also counted: etcd's raft proposals
 *    (writes, won or lost) per onboarding, from a member's /metrics.
 * 2. A device change reaching every node: redeem + register acknowledged
 *    by gw1's API → the device.changed event on gw3's bus → the device a
 *    peer of gw3's WireGuard interface (the wireguard plugin's
 *    wireguard.peers event, sent once its UAPI write returned; every
 *    device checked afterwards with one read of the interface), one
 *    device at a time. Against it, in the same rounds: etcd's own put on
 *    member 1 → the watch event through member 3.
 * Prints figures; never a test.
 *
 * usage: bench_cluster WORK ETCD_ENDPOINTS GATEWAY_PIDS WG_IF3
 *                      [MEASURED] [CLIENTS] [ROUNDS] [PROPAGATED]
 * WORK holds gwN/bus.sock and gwN/state/ca.pem (tests/cluster/
 * cluster_lib.sh's layout); gwN's API is https://198.18.0.N:8443.
 * ETCD_ENDPOINTS: comma-separated, member N first is gwN's. GATEWAY_PIDS:
 * comma-separated (meshgated, wireguard-go, etcd of the three). WG_IF3:
 * gw3's WireGuard interface. MEASURED is per round, PROPAGATED in all. */
#include <sodium.h>
#include <stdatomic.h>
#include <zmq.h>

#include "bus_proto.h"
#include "etcd.h"
#include "onboard_clients.h"
#include "rounds.h"
#include "wg.h"

#define NODES          3
#define MAX_PROPAGATED 4096

struct settings {
	const char *work, *pids, *wg_if3;
	char *etcd[NODES];
	int n, clients, rounds, propagated;
};

static int parse_args(int argc, char **argv, struct settings *s)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_cluster WORK ETCD_ENDPOINTS GATEWAY_PIDS WG_IF3 "
		                "[MEASURED] [CLIENTS] [ROUNDS] [PROPAGATED]\n");
		return -1;
	}
	*s = (struct settings){.work = argv[1], .pids = argv[3], .wg_if3 = argv[4]};
	s->n = argc > 5 ? atoi(argv[5]) : 2000;
	s->clients = argc > 6 ? atoi(argv[6]) : 8;
	s->rounds = argc > 7 ? atoi(argv[7]) : 5;
	s->propagated = argc > 8 ? atoi(argv[8]) : 300;
	char *save, *list = strdup(argv[2]);
	int i = 0;
	for (char *e = strtok_r(list, ",", &save); e && i < NODES; e = strtok_r(NULL, ",", &save))
		s->etcd[i++] = e;
	if (i != NODES || s->clients < 1 || s->clients > MAX_CLIENTS || s->n < s->clients ||
	    s->rounds < 1 || s->rounds > MAX_ROUNDS || s->propagated < s->rounds ||
	    s->propagated > MAX_PROPAGATED) {
		fprintf(stderr,
		        "%d etcd endpoints, CLIENTS 1-%d, MEASURED >= CLIENTS, ROUNDS 1-%d, "
		        "ROUNDS <= PROPAGATED <= %d\n",
		        NODES, MAX_CLIENTS, MAX_ROUNDS, MAX_PROPAGATED);
		return -1;
	}
	return 0;
}

static double percentile(double *v, int n, int pct)
{
	qsort(v, (size_t)n, sizeof(double), cmp);
	return v[n * pct / 100];
}

/* ---- etcd, bare ---- */

/* A handle that asks member `first` (the others only when it fails). */
static struct etcd *etcd_via(const struct settings *s, int first)
{
	const char *endpoints[NODES];
	char err[256];
	struct etcd *e;
	for (int i = 0; i < NODES; i++)
		endpoints[i] = s->etcd[(first + i) % NODES];
	struct etcd_config config = {.endpoints = endpoints, .n_endpoints = NODES};
	if (etcd_open(&config, &e, err, sizeof(err))) {
		fprintf(stderr, "etcd: %s\n", err);
		exit(1);
	}
	return e;
}

/* The records a redeem writes, at about their sizes in meshgate: the code
 * (its hash as the key), the device, the address claim. */
static char code_value[200], device_value[420], ipam_value[40];

static void bare_values(void)
{
	memset(code_value, 'c', sizeof(code_value) - 1);
	memset(device_value, 'd', sizeof(device_value) - 1);
	memset(ipam_value, 'i', sizeof(ipam_value) - 1);
}

struct bare_client {
	struct etcd *etcd;
	int round, id, n;
	double *lat; /* ms */
	int failed;
};

static void *bare_loop(void *arg)
{
	struct bare_client *c = arg;
	for (int i = 0; i < c->n; i++) {
		char code[96], device[96], ipam[96];
		snprintf(code, sizeof(code), "/bench-bare/codes/r%d-c%d-%d", c->round, c->id, i);
		snprintf(device, sizeof(device), "/bench-bare/devices/r%d-c%d-%d", c->round, c->id,
		         i);
		snprintf(ipam, sizeof(ipam), "/bench-bare/ipam/r%d-c%d-%d", c->round, c->id, i);
		struct etcd_compare absent = {.key = device};
		struct etcd_op ops[] = {
		    {ETCD_OP_PUT, code, code_value, sizeof(code_value) - 1, 0, NULL},
		    {ETCD_OP_PUT, device, device_value, sizeof(device_value) - 1, 0, NULL},
		    {ETCD_OP_PUT, ipam, ipam_value, sizeof(ipam_value) - 1, 0, NULL},
		};
		struct etcd_txn_result result;
		double t0 = now();
		int rc = etcd_txn(c->etcd, &absent, 1, ops, 3, &result);
		c->lat[i] = (now() - t0) * 1000;
		c->failed += rc || !result.succeeded;
	}
	return NULL;
}

/* n redeem-shaped txns by nclients threads, thread i through member i % 3. */
static struct load bare_txns(struct etcd **handles, int round, int n, int nclients)
{
	pthread_t th[MAX_CLIENTS];
	struct bare_client clients[MAX_CLIENTS];
	int per = n / nclients;
	double *lat = calloc((size_t)n, sizeof(double));
	struct load l = {0};
	double t0 = now();
	for (int i = 0; i < nclients; i++) {
		clients[i] = (struct bare_client){handles[i], round, i, per, lat + i * per, 0};
		pthread_create(&th[i], NULL, bare_loop, &clients[i]);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(th[i], NULL);
		l.failed += clients[i].failed;
	}
	l.wall = now() - t0;
	l.rate = per * nclients / l.wall;
	l.p50 = percentile(lat, per * nclients, 50);
	l.p99 = percentile(lat, per * nclients, 99);
	free(lat);
	return l;
}

/* A page of any size, for etcd's /metrics. */
struct page {
	char *data;
	size_t len;
};

static size_t page_add(char *p, size_t size, size_t n, void *arg)
{
	struct page *pg = arg;
	char *grown = realloc(pg->data, pg->len + size * n + 1);
	if (!grown)
		return 0;
	memcpy(grown + pg->len, p, size * n);
	pg->data = grown;
	pg->len += size * n;
	pg->data[pg->len] = '\0';
	return size * n;
}

/* etcd_server_proposals_committed_total of the member at `endpoint`: the
 * raft entries it has committed, one per write (a txn whose compares
 * failed too), or -1. */
static double etcd_proposals(const char *endpoint)
{
	char url[256];
	struct page pg = {0};
	double v = -1;
	snprintf(url, sizeof(url), "%s/metrics", endpoint);
	CURL *curl = curl_easy_init();
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, page_add);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &pg);
	const char *metric = "\netcd_server_proposals_committed_total ";
	if (curl_easy_perform(curl) == CURLE_OK && pg.data) {
		const char *at = strstr(pg.data, metric);
		if (at)
			v = strtod(at + strlen(metric), NULL);
	}
	curl_easy_cleanup(curl);
	free(pg.data);
	return v;
}

/* ---- a change reaching every node ---- */

/* A DEALER on a gateway's bus subscribed to `topic` (what an
 * out-of-process plugin does), once the broker acknowledged it. */
static void bus_send_sub(void *sock, const char *topic)
{
	struct mg_bus_msg msg = {.verb = MG_BUS_SUB, .name = {topic, strlen(topic)}};
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	char deadline[24];
	size_t n = mg_bus_encode(MG_BUS_TO_BROKER, &msg, frames, deadline);
	for (size_t i = 0; i < n; i++)
		zmq_send(sock, frames[i].data, frames[i].len, i + 1 < n ? ZMQ_SNDMORE : 0);
}

static void bus_wait_ack(void *sock);

/* A socket subscribed to each of `topics` (NULL-terminated), acknowledged. */
static void *bus_subscribe(void *zctx, const char *endpoint, const char *const *topics)
{
	void *sock = zmq_socket(zctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	if (zmq_connect(sock, endpoint)) {
		fprintf(stderr, "cannot connect to %s\n", endpoint);
		exit(1);
	}
	for (const char *const *t = topics; *t; t++) {
		bus_send_sub(sock, *t);
		bus_wait_ack(sock);
	}
	return sock;
}

/* The next message on `sock` within `timeout_ms`: 1 with its verb, topic
 * and payload (JSON or NULL), 0 on timeout. */
static int bus_next(void *sock, int timeout_ms, enum mg_bus_verb *verb, char *topic,
                    size_t topic_len, json_t **payload)
{
	zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
	if (zmq_poll(&item, 1, timeout_ms) <= 0)
		return 0;
	zmq_msg_t parts[MG_BUS_MAX_FRAMES];
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	int got = mg_bus_recv_frames(sock, parts, MG_BUS_MAX_FRAMES);
	size_t n = got > 0 ? (size_t)got : 0;
	for (size_t i = 0; i < n; i++)
		frames[i] = (struct mg_bus_slice){zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])};
	struct mg_bus_msg msg;
	const char *why;
	*payload = NULL;
	*verb = 0;
	if (!mg_bus_decode(MG_BUS_FROM_BROKER, frames, n, &msg, &why)) {
		*verb = msg.verb;
		snprintf(topic, topic_len, "%.*s", (int)msg.name.len, msg.name.data);
		if (msg.verb == MG_BUS_EVT)
			*payload = json_loadb(msg.payload.data, msg.payload.len, 0, NULL);
	}
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	return 1;
}

/* Waits for the broker's ACK of the subscription. */
static void bus_wait_ack(void *sock)
{
	enum mg_bus_verb verb;
	char topic[MG_BUS_MAX_NAME + 1];
	json_t *payload;
	while (bus_next(sock, 5000, &verb, topic, sizeof(topic), &payload)) {
		json_decref(payload);
		if (verb == MG_BUS_ACK)
			return;
	}
	fprintf(stderr, "the broker did not acknowledge the subscription\n");
	exit(1);
}

/* Whether `list` (a JSON array of strings) holds `key`. */
static int lists_key(json_t *list, const char *key)
{
	size_t i;
	json_t *item;
	json_array_foreach(list, i, item)
	{
		const char *text = json_string_value(item);
		if (text && !strcmp(text, key))
			return 1;
	}
	return 0;
}

/* Follows gw3's bus until device.changed says the device with `key` is
 * active (*event: when) and wireguard.peers says its peer is set (*peer);
 * -1 in either after 10 s. */
static void wait_device(void *sock, const char *key, double *event, double *peer)
{
	double deadline = now() + 10;
	*event = *peer = -1;
	while ((*event < 0 || *peer < 0) && now() < deadline) {
		enum mg_bus_verb verb;
		char topic[MG_BUS_MAX_NAME + 1];
		json_t *payload;
		if (!bus_next(sock, 100, &verb, topic, sizeof(topic), &payload))
			continue;
		if (verb == MG_BUS_EVT && !strcmp(topic, "device.changed")) {
			const char *k = json_string_value(json_object_get(payload, "public_key"));
			const char *state = json_string_value(json_object_get(payload, "state"));
			if (k && !strcmp(k, key) && state && !strcmp(state, "active"))
				*event = now();
		} else if (verb == MG_BUS_EVT && !strcmp(topic, "wireguard.peers") &&
		           lists_key(json_object_get(payload, "set"), key)) {
			*peer = now();
		}
		json_decref(payload);
	}
}

/* One onboarding through gw1's API on `curl`: the device's public key into
 * `key`; 0 once register was acknowledged. */
static int onboard_one(CURL *curl, const char *base, const char *code, char key[WG_KEY_B64_LEN])
{
	char url[256];
	snprintf(url, sizeof(url), "%s/api/v1/redeem", base);
	json_t *req = json_pack("{s:s}", "code", code);
	json_t *cfg = post(curl, url, req);
	json_decref(req);
	if (!cfg)
		return -1;
	device_public_key(key);
	json_t *r =
	    json_pack("{s:O, s:O, s:s, s:O}", "device_id", json_object_get(cfg, "device_id"),
	              "register_token", json_object_get(cfg, "register_token"), "public_key", key,
	              "address", json_object_get(cfg, "address"));
	snprintf(url, sizeof(url), "%s/api/v1/register", base);
	json_t *done = post(curl, url, r);
	json_decref(r), json_decref(cfg);
	json_decref(done);
	return done ? 0 : -1;
}

struct propagation {
	double event[MAX_PROPAGATED], peer[MAX_PROPAGATED]; /* ms after the ack */
	int n, failed;
	char keys[MAX_PROPAGATED][WG_KEY_B64_LEN]; /* checked on gw3 afterwards */
};

/* n devices onboarded one after another through gw1, each followed until
 * it is a peer on gw3. */
static void propagate(CURL *curl, const char *base, char **codes, int n, void *sub,
                      struct propagation *p)
{
	for (int i = 0; i < n; i++) {
		char *key = p->keys[p->n];
		double event, peer;
		if (onboard_one(curl, base, codes[i], key)) {
			p->failed++;
			continue;
		}
		double acked = now();
		wait_device(sub, key, &event, &peer);
		if (event < 0 || peer < 0) {
			fprintf(stderr, "device %s: no %s on gw3 within 10 s\n", key,
			        event < 0 ? "device.changed" : "wireguard.peers");
			p->failed++;
			continue;
		}
		p->event[p->n] = (event - acked) * 1000;
		p->peer[p->n++] = (peer - acked) * 1000;
	}
}

/* The event's word checked: one read of gw3's interface, every followed
 * device a peer. The number missing. */
static int missing_peers(const char *ifname, const struct propagation *p)
{
	const struct wg_backend *be;
	struct wg_device *dev = NULL;
	char err[256];
	int missing = 0;
	if (wg_backend_select("userspace", &be, err, sizeof(err)) ||
	    wg_device_get(be, ifname, &dev, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", ifname, err);
		return p->n;
	}
	for (int i = 0; i < p->n; i++) {
		wg_key pub;
		wg_key_from_base64(pub, p->keys[i]);
		missing += !wg_device_find_peer(dev, pub);
	}
	wg_device_free(dev);
	return missing;
}

/* The bare way: a put through member 1, seen by a watch through member 3. */
struct bare_watch {
	struct etcd *etcd;
	const char *prefix;
	int64_t from;
	volatile int stop;
	atomic_int seen; /* events so far */
	double last;     /* when the last came */
};

static int bare_watch_event(const struct etcd_event *events, size_t n, int64_t revision, void *arg)
{
	struct bare_watch *w = arg;
	(void)events, (void)revision;
	if (n) {
		w->last = now();
		atomic_fetch_add(&w->seen, (int)n);
	}
	return 0;
}

static void *bare_watch_loop(void *arg)
{
	struct bare_watch *w = arg;
	etcd_watch(w->etcd, w->prefix, w->from, bare_watch_event, w, &w->stop);
	return NULL;
}

/* n puts through member 1, one after another, each waited for on member 3:
 * the delays (ms) into lat. */
static int bare_propagate(const struct settings *s, int round, int n, double *lat)
{
	char prefix[64], key[96];
	snprintf(prefix, sizeof(prefix), "/bench-watch/r%d/", round);
	struct etcd *put = etcd_via(s, 0);
	struct bare_watch w = {.etcd = etcd_via(s, 2), .prefix = prefix};
	struct etcd_range r;
	/* the watch starts from the store's revision now */
	if (etcd_range(put, prefix, NULL, 0, 1, &r))
		return -1;
	w.from = r.revision + 1;
	etcd_range_free(&r);
	pthread_t th;
	pthread_create(&th, NULL, bare_watch_loop, &w);
	usleep(200 * 1000); /* the watch is set up */
	int done = 0;
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s%d", prefix, i);
		struct etcd_op op = {ETCD_OP_PUT, key, device_value, sizeof(device_value) - 1,
		                     0,           NULL};
		struct etcd_txn_result result;
		if (etcd_txn(put, NULL, 0, &op, 1, &result) || !result.succeeded)
			break;
		double t0 = now();
		while (atomic_load(&w.seen) <= i && now() < t0 + 5)
			usleep(100);
		if (atomic_load(&w.seen) <= i)
			break;
		/* a watch that saw it before the put's answer came: 0 */
		lat[done++] = w.last > t0 ? (w.last - t0) * 1000 : 0;
	}
	w.stop = 1;
	pthread_join(th, NULL);
	etcd_close(w.etcd);
	etcd_close(put);
	return done;
}

/* ---- main ---- */

static void print_load(const char *who, int round, const struct load *l)
{
	printf("  round %d %-10s %6.0f /s, p50 %6.2f ms, p99 %6.2f ms, %d failed\n", round + 1, who,
	       l->rate, l->p50, l->p99, l->failed);
}

int main(int argc, char **argv)
{
	struct settings s;
	if (parse_args(argc, argv, &s))
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	bare_values();
	char endpoints[NODES][512], cas[NODES][512], urls[NODES][64];
	const char *bases[NODES], *ca_files[NODES];
	for (int i = 0; i < NODES; i++) {
		snprintf(endpoints[i], sizeof(endpoints[i]), "ipc://%s/gw%d/bus.sock", s.work,
		         i + 1);
		snprintf(cas[i], sizeof(cas[i]), "%s/gw%d/state/ca.pem", s.work, i + 1);
		snprintf(urls[i], sizeof(urls[i]), "https://198.18.0.%d:8443", i + 1);
		bases[i] = urls[i], ca_files[i] = cas[i];
	}
	void *zctx = zmq_ctx_new();
	double t0 = now();
	/* codes made on gw1: every node has them once they are in etcd */
	char **codes = make_users(zctx, endpoints[0], "dev", s.n * s.rounds, 0);
	char **pcodes = make_users(zctx, endpoints[0], "prop", s.propagated, 0);
	printf("%d users with a code made over gw1's bus in %.1f s\n",
	       s.n * s.rounds + s.propagated, now() - t0);
	struct etcd *handles[MAX_CLIENTS];
	for (int i = 0; i < s.clients; i++)
		handles[i] = etcd_via(&s, i % NODES);

	/* 1. onboardings/s */
	struct figure ours = {.name = "ours: onboardings/s, 3 nodes", .unit = "/s"},
	              ours_p50 = {.name = "ours: p50", .unit = "ms"},
	              ours_p99 = {.name = "ours: p99", .unit = "ms"},
	              bare = {.name = "bare etcd: redeem-shaped txns/s", .unit = "/s"},
	              bare_p99 = {.name = "bare etcd: txn p99", .unit = "ms"},
	              proposals = {.name = "ours: etcd writes (raft proposals) per onboarding",
	                           .unit = "/onb"},
	              cpu = {.name = "ours: CPU per onboarding (3 meshgated, wg-go, etcd)",
	                     .unit = "ms"},
	              bare_cpu = {.name = "bare etcd: CPU per txn (3 meshgated, wg-go, etcd)",
	                          .unit = "ms"};
	int failed = 0;
	printf("%d rounds of %d onboardings by %d clients over the 3 APIs, against as many "
	       "redeem-shaped etcd txns by %d threads over the 3 members; who goes first "
	       "alternates\n",
	       s.rounds, s.n, s.clients, s.clients);
	json_t *threads = json_object(); /* the nine processes' CPU by thread, our rounds */
	double onboarded = 0;
	for (int r = 0; r < s.rounds; r++) {
		for (int turn = 0; turn < 2; turn++) {
			double cpu0 = processes_cpu(s.pids);
			if ((turn + r) % 2 == 0) {
				double p0 = etcd_proposals(s.etcd[0]);
				threads_cpu(s.pids, threads, -1);
				struct load l = run_clients(bases, ca_files, NODES, codes + r * s.n,
				                            s.n, s.clients);
				threads_cpu(s.pids, threads, +1);
				double p1 = etcd_proposals(s.etcd[0]);
				int done = s.n / s.clients * s.clients - l.failed;
				onboarded += done;
				print_load("ours", r, &l);
				printf("  round %d %-10s %.2f etcd writes per onboarding\n", r + 1,
				       "", (p1 - p0) / done);
				failed += l.failed;
				ours.v[ours.n++] = l.rate;
				ours_p50.v[ours_p50.n++] = l.p50;
				ours_p99.v[ours_p99.n++] = l.p99;
				proposals.v[proposals.n++] = (p1 - p0) / done;
				cpu.v[cpu.n++] = 1000 * (processes_cpu(s.pids) - cpu0) / done;
			} else {
				struct load l = bare_txns(handles, r, s.n, s.clients);
				print_load("bare etcd", r, &l);
				failed += l.failed;
				bare.v[bare.n++] = l.rate;
				bare_p99.v[bare_p99.n++] = l.p99;
				bare_cpu.v[bare_cpu.n++] =
				    1000 * (processes_cpu(s.pids) - cpu0) / (l.rate * l.wall);
			}
		}
	}

	/* 2. a change reaching every node */
	static const char *const followed[] = {"device.changed", "wireguard.peers", NULL};
	void *sub = bus_subscribe(zctx, endpoints[2], followed);
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *curl = curl_easy_init();
	curl_easy_setopt(curl, CURLOPT_CAINFO, ca_files[0]);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	struct figure event_p50 = {.name = "ours: ack on gw1 -> device.changed on gw3, p50",
	                           .unit = "ms"},
	              event_p99 = {.name = "ours: ack on gw1 -> device.changed on gw3, p99",
	                           .unit = "ms"},
	              peer_p50 = {.name = "ours: ack on gw1 -> peer on gw3, p50", .unit = "ms"},
	              peer_p99 = {.name = "ours: ack on gw1 -> peer on gw3, p99", .unit = "ms"},
	              watch_p50 = {.name = "bare etcd: put on m1 -> watch on m3, p50",
	                           .unit = "ms"},
	              watch_p99 = {.name = "bare etcd: put on m1 -> watch on m3, p99",
	                           .unit = "ms"};
	static struct propagation all;
	int per = s.propagated / s.rounds;
	printf("%d rounds of %d devices onboarded one at a time through gw1, each followed to "
	       "gw3, against as many etcd puts on m1 followed to a watch on m3\n",
	       s.rounds, per);
	for (int r = 0; r < s.rounds; r++) {
		for (int turn = 0; turn < 2; turn++) {
			if ((turn + r) % 2 == 0) {
				static struct propagation p;
				p.n = p.failed = 0;
				propagate(curl, bases[0], pcodes + r * per, per, sub, &p);
				failed += p.failed;
				if (!p.n)
					return 1;
				memcpy(all.event + all.n, p.event, (size_t)p.n * sizeof(double));
				memcpy(all.peer + all.n, p.peer, (size_t)p.n * sizeof(double));
				memcpy(all.keys + all.n, p.keys, (size_t)p.n * sizeof(p.keys[0]));
				all.n += p.n;
				event_p50.v[event_p50.n++] = percentile(p.event, p.n, 50);
				event_p99.v[event_p99.n++] = percentile(p.event, p.n, 99);
				peer_p50.v[peer_p50.n++] = percentile(p.peer, p.n, 50);
				peer_p99.v[peer_p99.n++] = percentile(p.peer, p.n, 99);
				printf("  round %d %-10s %d devices: device.changed p50 %.1f p99 "
				       "%.1f ms, "
				       "peer p50 %.1f p99 %.1f ms, %d failed\n",
				       r + 1, "ours", p.n, event_p50.v[r], event_p99.v[r],
				       peer_p50.v[r], peer_p99.v[r], p.failed);
			} else {
				double lat[MAX_PROPAGATED];
				int n = bare_propagate(&s, r, per, lat);
				if (n <= 0)
					return 1;
				watch_p50.v[watch_p50.n++] = percentile(lat, n, 50);
				watch_p99.v[watch_p99.n++] = percentile(lat, n, 99);
				printf("  round %d %-10s %d puts: watch p50 %.1f p99 %.1f ms\n",
				       r + 1, "bare etcd", n, watch_p50.v[r], watch_p99.v[r]);
			}
		}
	}
	int missing = missing_peers(s.wg_if3, &all);
	printf("gw3's interface (%s) read once afterwards: %d of the %d followed devices are "
	       "peers\n",
	       s.wg_if3, all.n - missing, all.n);
	failed += missing;
	printf("over all %d devices: device.changed p50 %.1f p99 %.1f ms, peer p50 %.1f p99 %.1f "
	       "ms\n",
	       all.n, percentile(all.event, all.n, 50), percentile(all.event, all.n, 99),
	       percentile(all.peer, all.n, 50), percentile(all.peer, all.n, 99));

	printf("onboardings through three nodes (redeem + register, HTTPS, etcd):\n");
	figure_print(&ours);
	figure_print(&ours_p50);
	figure_print(&ours_p99);
	figure_print(&bare);
	figure_print(&bare_p99);
	ratio_print("ours onboardings / bare etcd txns", &ours, &bare);
	figure_print(&proposals);
	figure_print(&cpu);
	figure_print(&bare_cpu);
	threads_cpu_print(threads, onboarded, "onboarding, all rounds");
	json_decref(threads);
	printf("a device change reaching every node:\n");
	figure_print(&event_p50);
	figure_print(&event_p99);
	figure_print(&peer_p50);
	figure_print(&peer_p99);
	figure_print(&watch_p50);
	figure_print(&watch_p99);
	printf("goals (issue 12): >= 1000 onboardings/s with p99 < 50 ms; a change on every "
	       "node within p99 200 ms\n");
	char what[160];
	snprintf(what, sizeof(what), "onboardings/s, 3 nodes + 3-member etcd (%d clients)",
	         s.clients);
	table_row(what, &ours, "bare etcd redeem-shaped txns (same threads)", &bare);
	table_row("cluster onboarding p99 latency", &ours_p99, "bare etcd txn p99", &bare_p99);
	table_row("ack on gw1 -> device.changed on gw3, p99", &event_p99,
	          "etcd put -> watch on another member", &watch_p99);
	table_row("ack on gw1 -> peer on gw3's interface, p99", &peer_p99,
	          "etcd put -> watch on another member", &watch_p99);
	/* no p50 row: the bare watch often sees a put before its answer (0 ms) */

	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	zmq_close(sub);
	for (int i = 0; i < s.clients; i++)
		etcd_close(handles[i]);
	zmq_ctx_term(zctx);
	return failed ? 1 : 0;
}
