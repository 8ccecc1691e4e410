/* Onboarding devices for the benchmarks that measure it (bench_onboarding,
 * bench_cluster): users and codes made over the bus, and clients that each
 * onboard devices over HTTPS (redeem, then register) on a keep-alive TLS
 * connection, timing each onboarding. */
#ifndef MG_BENCH_ONBOARD_CLIENTS_H
#define MG_BENCH_ONBOARD_CLIENTS_H

#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bus_client.h"
#include "device_key.h"

#define MAX_CLIENTS 64

/* The preloaded users' roles, in the proportions of a company: most are
 * developers. run.sh gives the firewall a policy for each. */
static const char *const roles[] = {"developer", "developer", "developer", "developer",
                                    "admin",     "ops",       "support"};
#define NROLES (sizeof(roles) / sizeof(roles[0]))

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

/* CPU seconds (user + system) of the calling thread (RUSAGE_THREAD) or
 * of the whole process (RUSAGE_SELF). */
static double cpu_seconds(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds (utime + stime) in a /proc .../stat file; 0 if unreadable. */
static double stat_cpu_seconds(const char *path)
{
	char line[1024];
	unsigned long utime = 0, stime = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	/* the fields after the command's closing parenthesis: utime is 14th */
	char *end = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	if (end)
		sscanf(end + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
		       &stime);
	fclose(f);
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The one line of a /proc .../comm file into out ("?" if unreadable). */
static void read_comm(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");
	snprintf(out, size, "?");
	if (f) {
		if (fgets(out, (int)size, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
}

/* CPU seconds of the processes in `pids` (comma-separated), from /proc. */
static double processes_cpu(const char *pids)
{
	double total = 0;
	char list[256];
	snprintf(list, sizeof(list), "%s", pids);
	for (char *save, *pid = strtok_r(list, ",", &save); pid; pid = strtok_r(NULL, ",", &save)) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%s/stat", pid);
		total += stat_cpu_seconds(path);
	}
	return total;
}

/* The CPU seconds of each thread of `pids` (comma-separated) added to
 * `acc` under "PROCESS/THREAD" (e.g. "meshgated/mg:preauth": the core
 * names its threads), `sign` (+1, -1) times: called -1 before and +1
 * after, acc holds what each kind of thread spent in between. */
static void threads_cpu(const char *pids, json_t *acc, int sign)
{
	char list[256];
	snprintf(list, sizeof(list), "%s", pids);
	for (char *save, *pid = strtok_r(list, ",", &save); pid; pid = strtok_r(NULL, ",", &save)) {
		char path[128], process[32];
		snprintf(path, sizeof(path), "/proc/%s/comm", pid);
		read_comm(path, process, sizeof(process));
		snprintf(path, sizeof(path), "/proc/%s/task", pid);
		DIR *tasks = opendir(path);
		for (struct dirent *t; tasks && (t = readdir(tasks));) {
			char thread[32], name[80];
			if (t->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/task/%s/comm", pid, t->d_name);
			read_comm(path, thread, sizeof(thread));
			snprintf(path, sizeof(path), "/proc/%s/task/%s/stat", pid, t->d_name);
			snprintf(name, sizeof(name), "%s/%s", process, thread);
			double was = json_real_value(json_object_get(acc, name));
			json_object_set_new(acc, name,
			                    json_real(was + sign * stat_cpu_seconds(path)));
		}
		if (tasks)
			closedir(tasks);
	}
}

static int by_cpu_desc(const void *a, const void *b)
{
	double x = json_real_value(json_array_get(*(json_t *const *)a, 1));
	double y = json_real_value(json_array_get(*(json_t *const *)b, 1));
	return (x < y) - (x > y);
}

/* acc (threads_cpu's) per unit of work: "ms per WHAT" by kind of thread,
 * the largest first, those under 1% of the whole left out. */
static void threads_cpu_print(json_t *acc, double units, const char *what)
{
	size_t n = json_object_size(acc), i = 0;
	json_t **rows = calloc(n ? n : 1, sizeof(*rows)), *v;
	const char *name;
	double total = 0;
	json_object_foreach(acc, name, v)
	{
		rows[i++] = json_pack("[s, f]", name, json_real_value(v));
		total += json_real_value(v);
	}
	qsort(rows, n, sizeof(*rows), by_cpu_desc);
	printf("CPU per %s by thread (%.2f ms in all):\n", what, 1000 * total / units);
	for (i = 0; i < n; i++) {
		double s = json_real_value(json_array_get(rows[i], 1));
		if (total > 0 && s / total >= 0.01)
			printf("  %-32s %7.2f ms  %4.1f%%\n",
			       json_string_value(json_array_get(rows[i], 0)), 1000 * s / units,
			       100 * s / total);
		json_decref(rows[i]);
	}
	free(rows);
}

static json_t *bus_call(struct mg_bus_client *bus, const char *service, json_t *request)
{
	json_t *reply = NULL;
	if (mg_bus_client_request(bus, service, request, 10000, &reply)) {
		char *text = reply ? json_dumps(reply, 0) : NULL;
		fprintf(stderr, "%s: %s\n", service, text ? text : "no reply");
		exit(1);
	}
	json_decref(request);
	return reply;
}

/* Users (each with a code) and, for the preload, their devices: made over
 * the bus, not measured, by several bus clients at once so that preauth's
 * group commit shares the durable commits. */
struct maker {
	void *zctx;
	const char *endpoint, *prefix;
	int from, n;  /* users from..from+n-1 */
	int onboard;  /* also redeem and register */
	char **codes; /* out: the codes (NULL when onboarded) */
};

static void *maker_loop(void *arg)
{
	struct maker *m = arg;
	char err[256];
	struct mg_bus_client *bus = mg_bus_client_new(m->zctx, m->endpoint, err, sizeof(err));
	if (!bus) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	for (int i = m->from; i < m->from + m->n; i++) {
		char name[32], key[WG_KEY_B64_LEN];
		snprintf(name, sizeof(name), "%s%d", m->prefix, i);
		json_t *user = bus_call(
		    bus, "preauth.user.add",
		    json_pack("{s:s, s:s}", "name", name, "role", roles[(size_t)i % NROLES]));
		json_t *code = json_object_get(user, "code");
		if (!m->onboard) {
			m->codes[i] = strdup(json_string_value(code));
			json_decref(user);
			continue;
		}
		json_t *cfg = bus_call(bus, "preauth.redeem", json_pack("{s:O}", "code", code));
		device_public_key(key);
		json_decref(bus_call(bus, "preauth.register",
		                     json_pack("{s:O, s:O, s:s, s:O}", "device_id",
		                               json_object_get(cfg, "device_id"), "register_token",
		                               json_object_get(cfg, "register_token"), "public_key",
		                               key, "address", json_object_get(cfg, "address"))));
		json_decref(cfg);
		json_decref(user);
	}
	mg_bus_client_free(bus);
	return NULL;
}

/* n users named PREFIX0..; their codes, or NULL when `onboard`: then each
 * has redeemed its code and registered a device. */
static char **make_users(void *zctx, const char *endpoint, const char *prefix, int n, int onboard)
{
	enum { MAKERS = 8 };
	pthread_t th[MAKERS];
	struct maker makers[MAKERS];
	char **codes = onboard ? NULL : calloc((size_t)n, sizeof(*codes));
	for (int i = 0; i < MAKERS; i++) {
		int from = n * i / MAKERS, to = n * (i + 1) / MAKERS;
		makers[i] = (struct maker){zctx, endpoint, prefix, from, to - from, onboard, codes};
		pthread_create(&th[i], NULL, maker_loop, &makers[i]);
	}
	for (int i = 0; i < MAKERS; i++)
		pthread_join(th[i], NULL);
	return codes;
}

/* ---- the clients ---- */

struct body {
	char data[8192];
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = size * n;
	if (b->len + len < sizeof(b->data)) {
		memcpy(b->data + b->len, p, len);
		b->len += len;
		b->data[b->len] = '\0';
	}
	return len;
}

static json_t *post(CURL *curl, const char *url, json_t *request)
{
	struct body b = {.len = 0};
	char *text = json_dumps(request, JSON_COMPACT);
	long status = 0;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	free(text);
	if (rc != CURLE_OK || status != 200) {
		fprintf(stderr, "POST %s: %s, HTTP %ld: %s\n", url, curl_easy_strerror(rc), status,
		        b.data);
		return NULL;
	}
	return json_loads(b.data, 0, NULL);
}

struct client {
	const char *base, *ca;
	char **codes;
	int n;
	double *lat; /* ms, one per onboarding */
	int failed;
	double cpu; /* seconds this client's thread used */
};

static void *client_loop(void *arg)
{
	struct client *c = arg;
	char redeem[512], reg[512];
	double cpu0 = cpu_seconds(RUSAGE_THREAD);
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *curl = curl_easy_init();
	snprintf(redeem, sizeof(redeem), "%s/api/v1/redeem", c->base);
	snprintf(reg, sizeof(reg), "%s/api/v1/register", c->base);
	curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	for (int i = 0; i < c->n; i++) {
		char key[WG_KEY_B64_LEN];
		double t0 = now();
		json_t *req = json_pack("{s:s}", "code", c->codes[i]);
		json_t *cfg = post(curl, redeem, req);
		json_t *done = NULL;
		if (cfg) {
			device_public_key(key);
			json_t *r = json_pack("{s:O, s:O, s:s, s:O}", "device_id",
			                      json_object_get(cfg, "device_id"), "register_token",
			                      json_object_get(cfg, "register_token"), "public_key",
			                      key, "address", json_object_get(cfg, "address"));
			done = post(curl, reg, r);
			json_decref(r);
		}
		c->failed += !done;
		c->lat[i] = (now() - t0) * 1000;
		json_decref(req), json_decref(cfg), json_decref(done);
	}
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	c->cpu = cpu_seconds(RUSAGE_THREAD) - cpu0;
	return NULL;
}

/* One round of load: n onboardings by nclients clients, client i against
 * bases[i % nbases] (its CA cas[i % nbases]): spread over several APIs. */
struct load {
	double rate, p50, p99; /* onboardings/s, ms */
	double client_cpu;     /* seconds, all clients */
	double process_cpu;    /* seconds, this whole process (the plain server too) */
	double wall;           /* seconds */
	int failed;
};

static struct load run_clients(const char *const *bases, const char *const *cas, int nbases,
                               char **codes, int n, int nclients)
{
	pthread_t th[MAX_CLIENTS];
	struct client clients[MAX_CLIENTS];
	int per = n / nclients;
	double *lat = calloc((size_t)n, sizeof(double));
	struct load l = {0};
	double cpu0 = cpu_seconds(RUSAGE_SELF);
	double t0 = now();
	for (int i = 0; i < nclients; i++) {
		clients[i] = (struct client){
		    bases[i % nbases], cas[i % nbases], codes + i * per, per, lat + i * per, 0, 0};
		pthread_create(&th[i], NULL, client_loop, &clients[i]);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(th[i], NULL);
		l.failed += clients[i].failed;
		l.client_cpu += clients[i].cpu;
	}
	l.wall = now() - t0;
	l.process_cpu = cpu_seconds(RUSAGE_SELF) - cpu0;
	int done = per * nclients;
	qsort(lat, (size_t)done, sizeof(double), cmp);
	l.rate = done / l.wall;
	l.p50 = lat[done / 2];
	l.p99 = lat[done * 99 / 100];
	free(lat);
	return l;
}

#endif
