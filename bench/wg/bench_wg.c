/*
 * How long it takes to put 10,000 peers on a fresh wireguard-go interface:
 * our full reconcile (one UAPI transaction) against one `wg set` process per
 * peer; then one change on the 10k device (add one peer, remove one).
 *
 * Runs as root in a private network namespace (unshare), so nothing outside
 * is touched; the daemons are our children and die with us. Prints figures,
 * never fails on time. Usage: bench_wg [--quick]  (--quick: 1,000 `wg set`
 * runs extrapolated to 10k instead of all 10k, ~10 s, measured).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wg.h"
#include "wg_uapi.h"

#define PEERS   10000
#define QUICK   1000 /* `wg set` runs measured with --quick, then extrapolated */
#define CHANGES 100

extern char **environ;

struct iface {
	char name[IF_NAMESIZE];
	pid_t pid;
};

static const struct wg_backend *be;
static struct iface ifaces[2];
static char err[256];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void stop_all(void)
{
	for (int i = 0; i < 2; i++)
		if (ifaces[i].pid > 0)
			wg_interface_delete(be, ifaces[i].name, ifaces[i].pid, NULL, 0);
}

static void on_signal(int sig)
{
	for (int i = 0; i < 2; i++)
		if (ifaces[i].pid > 0)
			kill(ifaces[i].pid, SIGTERM);
	_exit(128 + sig);
}

static int start(struct iface *f, const char *tag)
{
	wg_key priv;

	snprintf(f->name, sizeof(f->name), "mgb%s%d", tag, (int)getpid());
	wg_key_generate_private(priv);
	if (wg_interface_create(be, f->name, WG_CREATE_DIE_WITH_PARENT, &f->pid, err,
	                        sizeof(err)) ||
	    wg_device_configure(be, f->name, priv, 0, -1, err, sizeof(err))) {
		fprintf(stderr, "bench_wg: %s\n", err);
		return -1;
	}
	return 0;
}

/* One /32 each: 10.(100 + i / 65536).(i / 256 % 256).(i % 256). */
static void make_peers(struct wg_peer *peers, struct wg_allowed_ip *ips, size_t n)
{
	char text[32];
	wg_key priv;

	for (size_t i = 0; i < n; i++) {
		wg_key_generate_private(priv);
		wg_key_public_from_private(peers[i].public_key, priv);
		snprintf(text, sizeof(text), "10.%zu.%zu.%zu/32", 100 + i / 65536, i / 256 % 256,
		         i % 256);
		wg_allowed_ip_parse(&ips[i], text);
		peers[i].allowed_ips = &ips[i];
		peers[i].n_allowed_ips = 1;
	}
}

/* `wg set IF peer KEY allowed-ips IP`, one process per peer, as a shell
 * script or a naive daemon would do it. */
static int wg_set_one(const char *ifname, const struct wg_peer *peer)
{
	char b64[WG_KEY_B64_LEN], ip[64], ifcopy[IF_NAMESIZE];
	char wg[] = "wg", set[] = "set", peerw[] = "peer", allowed[] = "allowed-ips";
	char *argv[] = {wg, set, ifcopy, peerw, b64, allowed, ip, NULL};
	const struct wg_allowed_ip *a = &peer->allowed_ips[0];
	const uint8_t *b = (const uint8_t *)&a->ip4;
	pid_t pid;
	int status;

	snprintf(ifcopy, sizeof(ifcopy), "%s", ifname);
	wg_key_to_base64(b64, peer->public_key);
	snprintf(ip, sizeof(ip), "%u.%u.%u.%u/%u", b[0], b[1], b[2], b[3], a->cidr);
	if (posix_spawnp(&pid, "wg", NULL, NULL, argv, environ))
		return -1;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	return 0;
}

static size_t count_peers(const char *ifname)
{
	struct wg_device *dev = NULL;
	size_t n = 0;

	if (wg_device_get(be, ifname, &dev, err, sizeof(err)) == 0)
		n = dev->n_peers;
	wg_device_free(dev);
	return n;
}

int main(int argc, char **argv)
{
	static struct wg_peer peers[PEERS + 1];
	static struct wg_allowed_ip ips[PEERS + 1];
	double t, reconcile_s, again_s, get_s, format_s, per_peer_s, add_ms[CHANGES],
	    del_ms[CHANGES];
	size_t per_peer_n = argc > 1 && !strcmp(argv[1], "--quick") ? QUICK : PEERS;
	struct wg_device *dev = NULL;
	int ret = 1;

	if (geteuid() != 0) {
		fprintf(stderr, "bench_wg: needs root (a network namespace, wireguard-go)\n");
		return 1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		perror("bench_wg: unshare");
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	wg_backend_select("userspace", &be, NULL, 0);

	printf("generating %d peer keys... ", PEERS + 1);
	fflush(stdout);
	t = now();
	make_peers(peers, ips, PEERS + 1);
	printf("%.2f s (not counted below)\n", now() - t);

	if (start(&ifaces[0], "R") || start(&ifaces[1], "W"))
		goto out;

	/* 1. our way: one transaction of 10k peers */
	t = now();
	if (wg_peers_reconcile(be, ifaces[0].name, peers, PEERS, err, sizeof(err))) {
		fprintf(stderr, "bench_wg: reconcile: %s\n", err);
		goto out;
	}
	reconcile_s = now() - t;
	t = now();
	if (wg_device_get(be, ifaces[0].name, &dev, err, sizeof(err)) || dev->n_peers != PEERS) {
		fprintf(stderr, "bench_wg: read back: %s\n", err);
		goto out;
	}
	get_s = now() - t;
	wg_device_free(dev);
	t = now();
	wg_peers_reconcile(be, ifaces[0].name, peers, PEERS, err, sizeof(err));
	again_s = now() - t;

	/* our share of the reconcile: building the 10k-peer request */
	{
		struct wg_device d = {
		    .flags = WG_DEVICE_REPLACE_PEERS, .peers = peers, .n_peers = PEERS};
		char *req;
		size_t len;

		t = now();
		if (wg_uapi_format_set(&d, &req, &len))
			goto out;
		format_s = now() - t;
		free(req);
	}

	/* 2. the per-process way, on the other fresh interface */
	t = now();
	for (size_t i = 0; i < per_peer_n; i++)
		if (wg_set_one(ifaces[1].name, &peers[i])) {
			fprintf(stderr, "bench_wg: wg set failed at peer %zu\n", i);
			goto out;
		}
	per_peer_s = now() - t;
	if (count_peers(ifaces[1].name) != per_peer_n) {
		fprintf(stderr, "bench_wg: wg set left %zu peers\n", count_peers(ifaces[1].name));
		goto out;
	}

	/* 3. one change on the 10k device: add one peer, remove it */
	for (int i = 0; i < CHANGES; i++) {
		wg_key key;

		memcpy(key, peers[PEERS].public_key, WG_KEY_LEN);
		t = now();
		if (wg_peers_upsert(be, ifaces[0].name, &peers[PEERS], 1, err, sizeof(err)))
			goto out;
		add_ms[i] = (now() - t) * 1e3;
		t = now();
		if (wg_peers_remove(be, ifaces[0].name, &key, 1, err, sizeof(err)))
			goto out;
		del_ms[i] = (now() - t) * 1e3;
	}
	qsort(add_ms, CHANGES, sizeof(double), cmp_double);
	qsort(del_ms, CHANGES, sizeof(double), cmp_double);
	if (count_peers(ifaces[0].name) != PEERS)
		goto out;

	printf("\nwireguard-go, %d peers with one /32 each, fresh interface\n", PEERS);
	printf("  full reconcile, one UAPI transaction:   %8.3f s\n", reconcile_s);
	printf("    of which building the request here:   %8.3f s (the rest is wireguard-go)\n",
	       format_s);
	printf("  same reconcile on the populated device: %8.3f s\n", again_s);
	printf("  read back of the %d peers:           %8.3f s\n", PEERS, get_s);
	if (per_peer_n == PEERS)
		printf("  one `wg set` process per peer:          %8.3f s (measured)\n",
		       per_peer_s);
	else
		printf("  one `wg set` process per peer:          %8.3f s (%zu measured in %.3f s, "
		       "extrapolated x%zu)\n",
		       per_peer_s * PEERS / (double)per_peer_n, per_peer_n, per_peer_s,
		       PEERS / per_peer_n);
	printf("  ratio per-process / reconcile:          %8.0f x\n",
	       per_peer_s * PEERS / (double)per_peer_n / reconcile_s);
	printf("one change on the %d-peer device, %d runs\n", PEERS, CHANGES);
	printf("  add one peer:    median %.3f ms, p90 %.3f ms, max %.3f ms\n", add_ms[CHANGES / 2],
	       add_ms[CHANGES * 9 / 10], add_ms[CHANGES - 1]);
	printf("  remove one peer: median %.3f ms, p90 %.3f ms, max %.3f ms\n", del_ms[CHANGES / 2],
	       del_ms[CHANGES * 9 / 10], del_ms[CHANGES - 1]);
	printf("targets: reconcile < 0.5 s, one change < 1 ms\n");
	ret = 0;
out:
	if (ret && err[0])
		fprintf(stderr, "bench_wg: %s\n", err);
	stop_all();
	return ret;
}
