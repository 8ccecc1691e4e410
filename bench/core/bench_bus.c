/* Bus round trips: a request from a client to a plugin's service and back,
 * through the real broker, actor and plugin (the example `hello`), in
 * process (inproc) and over the ipc socket; against a bare ZeroMQ
 * REQ/REP echo on the same transport, measured in the same run (the
 * naive floor: one hop, no routing, no JSON), round after round, ours
 * and bare interleaved. Prints figures only. Wall clock on a shared
 * machine is noisy: bench/core/callgrind.sh gives instructions per round
 * trip. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "bus_client.h"
#include "config.h"
#include "core.h"
#include "rounds.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct run {
	void *zctx;
	const char *endpoint;
	int n;
	double *lat;
};

static void *client_loop(void *arg)
{
	struct run *r = arg;
	char err[256];
	struct mg_bus_client *c = mg_bus_client_new(r->zctx, r->endpoint, err, sizeof(err));
	json_t *req = json_pack("{s:s}", "name", "bench");
	for (int i = 0; i < r->n; i++) {
		json_t *reply;
		double t0 = now();
		if (mg_bus_client_request(c, "hello.say", req, 5000, &reply))
			fprintf(stderr, "request failed\n");
		r->lat[i] = (now() - t0) * 1e6;
		json_decref(reply);
	}
	json_decref(req);
	mg_bus_client_free(c);
	return NULL;
}

/* Round trips/s of `threads` clients making n requests each; the median
 * and 99th percentile latency in microseconds. */
static double measure(void *zctx, const char *endpoint, int threads, int n, double *p50,
                      double *p99)
{
	pthread_t th[16];
	struct run runs[16];
	double *all = calloc((size_t)(threads * n), sizeof(double));
	double t0 = now();
	for (int t = 0; t < threads; t++) {
		runs[t] = (struct run){zctx, endpoint, n, all + t * n};
		pthread_create(&th[t], NULL, client_loop, &runs[t]);
	}
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	double took = now() - t0;
	qsort(all, (size_t)(threads * n), sizeof(double), cmp);
	*p50 = all[threads * n / 2];
	*p99 = all[threads * n * 99 / 100];
	free(all);
	return threads * n / took;
}

/* The floor: REQ/REP echo, no broker, no JSON. */
struct echo {
	void *sock;
	int n;
};

static void *echo_server(void *arg)
{
	struct echo *e = arg;
	char buf[256];
	for (int i = 0; i < e->n; i++) {
		int n = zmq_recv(e->sock, buf, sizeof(buf), 0);
		if (n < 0)
			break;
		zmq_send(e->sock, buf, (size_t)n, 0);
	}
	zmq_close(e->sock); /* closed by the thread that used it */
	return NULL;
}

static double bare_zmq(void *zctx, const char *endpoint, int n)
{
	void *rep = zmq_socket(zctx, ZMQ_REP), *req = zmq_socket(zctx, ZMQ_REQ);
	int zero = 0;
	pthread_t th;
	char buf[256];
	zmq_setsockopt(rep, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_bind(rep, endpoint);
	zmq_connect(req, endpoint);
	struct echo e = {rep, n};
	pthread_create(&th, NULL, echo_server, &e);
	double t0 = now();
	for (int i = 0; i < n; i++) {
		zmq_send(req, "{\"name\":\"bench\"}", 16, 0);
		zmq_recv(req, buf, sizeof(buf), 0);
	}
	double rate = n / (now() - t0);
	pthread_join(th, NULL);
	zmq_close(req);
	return rate;
}

/* One transport's figures over the rounds. */
struct transport {
	const char *name;
	char bus_ep[160], bare_ep[160];
	struct figure bus1, p50, p99, bus4, bare;
};

static void transport_init(struct transport *t, const char *name, const char *bus_ep)
{
	t->name = name;
	snprintf(t->bus_ep, sizeof(t->bus_ep), "%s", bus_ep);
	t->bus1 = (struct figure){.name = "bus, 1 client", .unit = "trips/s"};
	t->p50 = (struct figure){.name = "bus, 1 client, p50", .unit = "us"};
	t->p99 = (struct figure){.name = "bus, 1 client, p99", .unit = "us"};
	t->bus4 = (struct figure){.name = "bus, 4 clients", .unit = "trips/s"};
	t->bare = (struct figure){.name = "bare ZeroMQ REQ/REP echo", .unit = "trips/s"};
}

/* One round on one transport; who goes first alternates. */
static void transport_round(struct transport *t, void *zctx, int r, int n)
{
	double p50, p99;
	if (r % 2 == 0)
		t->bare.v[r] = bare_zmq(zctx, t->bare_ep, n);
	t->bus1.v[r] = measure(zctx, t->bus_ep, 1, n, &t->p50.v[r], &t->p99.v[r]);
	t->bus4.v[r] = measure(zctx, t->bus_ep, 4, n / 4, &p50, &p99);
	if (r % 2 == 1)
		t->bare.v[r] = bare_zmq(zctx, t->bare_ep, n);
	t->bus1.n = t->p50.n = t->p99.n = t->bus4.n = t->bare.n = r + 1;
}

static void transport_print(const struct transport *t)
{
	printf(" %s:\n", t->name);
	figure_print(&t->bare);
	figure_print(&t->bus1);
	figure_print(&t->p50);
	figure_print(&t->p99);
	figure_print(&t->bus4);
	ratio_print("bus / bare, 1 client", &t->bus1, &t->bare);
	char what[96];
	snprintf(what, sizeof(what), "bus round trips, 1 client, %s", t->name);
	table_row(what, &t->bus1, "bare ZeroMQ REQ/REP echo", &t->bare);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000;
	const char *plugin_dir = argc > 2 ? argv[2] : PLUGIN_DIR;
	int rounds = argc > 3 ? atoi(argv[3]) : 5;
	char dir[64], err[512], ipc[128], ipc_ep[160];
	struct core core = {0};
	static struct transport in, over_ipc;

	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = 5;
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof(dir), "/tmp/mgbus.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(ipc, sizeof(ipc), "%s/bus.sock", dir);
	snprintf(ipc_ep, sizeof(ipc_ep), "ipc://%s", ipc);
	pthread_mutex_init(&core.plugins_lock, NULL);
	core_log_set_level(MG_LOG_WARN);
	core.settings = json_pack("{s:s}", "state_dir", dir);
	core.state = state_open(dir, 64 << 20, err, sizeof(err));
	core.zctx = zmq_ctx_new();
	core.inproc_endpoint = "inproc://bench-bus";
	core.broker =
	    broker_new(core.zctx, core.inproc_endpoint, ipc, NULL, NULL, err, sizeof(err));
	json_t *names = json_pack("[s]", "hello");
	if (!core.state || !core.broker || broker_start(core.broker) ||
	    loader_load_all(&core, plugin_dir, names, err, sizeof(err)) ||
	    loader_sort(&core, err, sizeof(err)) ||
	    loader_configure(&core, NULL, err, sizeof(err)) || loader_start_all(&core, 1, 0)) {
		fprintf(stderr, "bench_bus: cannot start: %s\n", err);
		return 1;
	}
	json_decref(names);

	transport_init(&in, "inproc", core.inproc_endpoint);
	transport_init(&over_ipc, "ipc", ipc_ep);
	for (int r = 0; r < rounds; r++) {
		/* a fresh endpoint per round: a closed one may still be bound */
		snprintf(in.bare_ep, sizeof(in.bare_ep), "inproc://bare-%d", r);
		snprintf(over_ipc.bare_ep, sizeof(over_ipc.bare_ep), "ipc://%s/bare-%d.sock", dir,
		         r);
		transport_round(&in, core.zctx, r, n);
		transport_round(&over_ipc, core.zctx, r, n);
	}
	/* the bus makes four hops (client, broker, plugin, broker, client) and
	 * parses JSON twice where the echo makes two and parses nothing */
	printf("bench_bus: %d rounds of %d requests to hello.say (4 clients: %d each)\n", rounds, n,
	       n / 4);
	transport_print(&in);
	transport_print(&over_ipc);

	loader_stop_all(&core);
	loader_unload_all(&core);
	broker_free(core.broker);
	zmq_ctx_shutdown(core.zctx);
	state_close(core.state);
	json_decref(core.settings);
	snprintf(err, sizeof(err), "rm -rf %s", dir);
	return system(err) ? 1 : 0;
}
