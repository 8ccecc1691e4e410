/* Time-limited access: a user's "access_until" (unix seconds) bounds their
 * devices. At that moment the user's active devices become "expired"
 * through the normal device write path, so that wireguard, firewall and
 * dns (which follow device.changed and take only "active" devices) drop
 * their peers, set membership and names on every node; a later deadline
 * (or none) brings them back to "active".
 *
 * The deadlines still to enforce are kept in a min-heap ordered by time,
 * with one timer armed for the earliest: a change costs O(log n), and
 * nothing runs between deadlines. `until` (user -> deadline) is the truth;
 * a heap entry whose deadline no longer matches it is stale and dropped
 * when it reaches the top, so a change only ever pushes. The index is
 * built from the users db at start (and after a cache rebuild), and
 * follows every change of a user, another node's included; what fires is
 * checked against the users db in the firing transaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "preauth.h"

/* A timer longer than this is armed again when it fires: the SDK's
 * interval is an unsigned count of milliseconds. */
#define LONGEST_WAIT_MS (24 * 3600 * 1000U)
/* After a failed firing (no quorum, a write error): the next try. */
#define RETRY_MS 1000

struct deadline {
	json_int_t at;
	char name[PA_NAME_MAX + 1];
};

struct pa_access {
	struct deadline *heap;
	size_t n, cap;
	json_t *until; /* user -> deadline still to enforce (s) */
	int timer;     /* 0: none armed */
	json_int_t timer_for;
};

struct pa_access *pa_access_new(void)
{
	struct pa_access *a = calloc(1, sizeof(*a));
	if (a && !(a->until = json_object())) {
		free(a);
		return NULL;
	}
	return a;
}

void pa_access_free(struct pa_access *a)
{
	if (!a)
		return;
	json_decref(a->until);
	free(a->heap);
	free(a);
}

static void swap(struct deadline *x, struct deadline *y)
{
	struct deadline t = *x;
	*x = *y;
	*y = t;
}

static int push(struct pa_access *a, json_int_t at, const char *name)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct deadline *heap = realloc(a->heap, cap * sizeof(*heap));
		if (!heap)
			return -ENOMEM;
		a->heap = heap;
		a->cap = cap;
	}
	size_t i = a->n++;
	a->heap[i].at = at;
	snprintf(a->heap[i].name, sizeof(a->heap[i].name), "%s", name);
	while (i && a->heap[(i - 1) / 2].at > a->heap[i].at) {
		swap(&a->heap[(i - 1) / 2], &a->heap[i]);
		i = (i - 1) / 2;
	}
	return 0;
}

static void pop(struct pa_access *a)
{
	size_t i = 0;
	a->heap[0] = a->heap[--a->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;
		if (l < a->n && a->heap[l].at < a->heap[min].at)
			min = l;
		if (r < a->n && a->heap[r].at < a->heap[min].at)
			min = r;
		if (min == i)
			return;
		swap(&a->heap[i], &a->heap[min]);
		i = min;
	}
}

static int is_current(const struct pa_access *a, const struct deadline *d)
{
	json_t *until = json_object_get(a->until, d->name);
	return until && json_integer_value(until) == d->at;
}

/* The earliest deadline still to enforce, stale entries dropped; NULL
 * when there is none. */
static const struct deadline *earliest(struct pa_access *a)
{
	while (a->n && !is_current(a, &a->heap[0]))
		pop(a);
	return a->n ? &a->heap[0] : NULL;
}

static void fire(mg_ctx *ctx, void *arg);

/* Stale entries stay until they reach the top; when they outnumber the
 * live ones, the heap is made again from `until` (amortised O(1)). */
static void compact(struct pa_access *a)
{
	const char *name;
	json_t *v;
	if (a->n < 2 * json_object_size(a->until) + 64)
		return;
	a->n = 0;
	json_object_foreach(a->until, name, v) push(a, json_integer_value(v), name);
}

/* One timer, for the earliest deadline: kept when it is already armed for
 * it, else replaced. */
static void arm(struct pa *pa)
{
	struct pa_access *a = pa->access;
	const struct deadline *next = earliest(a);
	if (a->timer && next && a->timer_for == next->at)
		return;
	if (a->timer)
		mg_timer_del(pa->ctx, a->timer);
	a->timer = 0;
	if (!next)
		return;
	uint64_t now = mg_now_ms(pa->ctx), due = (uint64_t)next->at * 1000;
	uint64_t wait = due > now ? due - now : 0;
	int id = mg_timer_add(pa->ctx, wait > LONGEST_WAIT_MS ? LONGEST_WAIT_MS : (unsigned)wait, 0,
	                      fire, pa);
	if (id < 0) {
		mg_error_log(pa->ctx, "cannot arm the access timer: %s", strerror(-id));
		return;
	}
	a->timer = id;
	a->timer_for = next->at;
}

void pa_access_track(struct pa *pa, const char *name, json_t *user)
{
	struct pa_access *a = pa->access;
	json_t *until = json_object_get(user, "access_until");
	json_t *known = json_object_get(a->until, name);
	if (!json_is_integer(until)) {
		json_object_del(a->until, name);
	} else if (!known || json_integer_value(known) != json_integer_value(until)) {
		compact(a);
		if (push(a, json_integer_value(until), name))
			mg_error_log(pa->ctx, "no memory for the access deadline of %s", name);
		else
			json_object_set_new(a->until, name,
			                    json_integer(json_integer_value(until)));
	}
	arm(pa);
}

void pa_access_forget(struct pa *pa, const char *name)
{
	json_object_del(pa->access->until, name);
	arm(pa);
}

void pa_access_clear(struct pa *pa)
{
	json_object_clear(pa->access->until);
	pa->access->n = 0;
	arm(pa);
}

/* ---- the devices of a user ---- */

int pa_access_ended(struct pa *pa, json_t *user)
{
	json_t *until = json_object_get(user, "access_until");
	return json_is_integer(until) && json_integer_value(until) <= (json_int_t)pa_now_s(pa);
}

void pa_access_time_text(json_int_t seconds, char *out, size_t len)
{
	time_t t = (time_t)seconds;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "%lld", (long long)seconds);
}

json_t *pa_access_expired_error(const char *name, json_t *user)
{
	char when[32];
	pa_access_time_text(json_integer_value(json_object_get(user, "access_until")), when,
	                    sizeof(when));
	json_t *e = mg_error("access_expired",
	                     "the access of user %s ended at %s; ask an administrator to extend "
	                     "it",
	                     name, when);
	json_object_set(e, "access_until", json_object_get(user, "access_until"));
	return e;
}

int pa_access_devices(struct pa_op *op, const char *name, int ended, int *changed)
{
	struct pa *pa = op->pa;
	const char *from = ended ? "active" : "expired", *to = ended ? "expired" : "active";
	const char *id;
	json_t *cached, *ids = json_array();
	size_t i;
	int rc = 0;
	*changed = 0;
	/* the cache names the candidates; the record in the transaction is
	 * what is read and written */
	json_object_foreach(pa->devices, id, cached)
	{
		const char *user = json_string_value(json_object_get(cached, "user"));
		if (user && !strcmp(user, name))
			json_array_append_new(ids, json_string(id));
	}
	json_array_foreach(ids, i, cached)
	{
		json_t *device;
		id = json_string_value(cached);
		if (mg_state_get(pa->ctx, op->txn, PA_DB_DEVICES, id, &device))
			continue; /* gone meanwhile */
		const char *state = json_string_value(json_object_get(device, "state"));
		if (state && !strcmp(state, from)) {
			json_object_set_new(device, "state", json_string(to));
			json_object_set_new(device, "id", json_string(id));
			rc = mg_state_put(pa->ctx, op->txn, PA_DB_DEVICES, id, device);
			if (!rc) {
				pa_op_device_changed(op, device, NULL);
				(*changed)++;
			}
		}
		json_decref(device);
		if (rc)
			break;
	}
	json_decref(ids);
	return rc;
}

/* ---- the timer ---- */

/* One transaction: every due user whose record still says their access
 * has ended gets their active devices expired. Idempotent: another node
 * may have done it already, and then nothing is written. */
static int expire_due(struct pa *pa, json_t *due)
{
	struct pa_op op;
	const char *name;
	json_t *v, *user;
	int n = 0, rc = pa_op_begin_alone(pa, &op);
	if (rc)
		return rc;
	json_object_foreach(due, name, v)
	{
		int changed = 0;
		if (mg_state_get(pa->ctx, op.txn, PA_DB_USERS, name, &user))
			continue; /* deleted meanwhile */
		if (pa_access_ended(pa, user))
			rc = pa_access_devices(&op, name, 1, &changed);
		if (changed) {
			char when[32];
			pa_access_time_text(json_integer_value(v), when, sizeof(when));
			mg_info(pa->ctx, "access of user %s ended at %s: %d devices expired", name,
			        when, changed);
		}
		n += changed;
		json_decref(user);
		if (rc)
			break;
	}
	if (rc || !n) {
		pa_op_abort(&op);
		return rc;
	}
	return pa_op_commit(&op);
}

/* The due deadlines, taken out of the index. */
static json_t *take_due(struct pa *pa)
{
	struct pa_access *a = pa->access;
	json_int_t now = (json_int_t)pa_now_s(pa);
	json_t *due = json_object();
	const struct deadline *d;
	while ((d = earliest(a)) && d->at <= now) {
		json_object_set_new(due, d->name, json_integer(d->at));
		json_object_del(a->until, d->name);
		pop(a);
	}
	return due;
}

static void fire(mg_ctx *ctx, void *arg)
{
	struct pa *pa = arg;
	json_t *due = NULL, *v;
	const char *name;
	int rc = 0;
	(void)ctx;
	pa->access->timer = 0; /* one-shot: it has fired */
	for (int tries = 1; tries <= PA_COMMIT_TRIES; tries++) {
		json_decref(due);
		due = take_due(pa);
		if (!json_object_size(due) || (rc = expire_due(pa, due)) != -ESTALE)
			break;
		/* another node's change won the race (maybe the same expiry):
		 * the caches and this index again from state, and look again */
		pa_cache_rebuild(pa);
	}
	if (rc) {
		/* no quorum or a write error: the deadlines go back, and a try
		 * again in a second */
		if (rc != -ESTALE && rc != -EHOSTUNREACH)
			mg_error_log(pa->ctx, "ending access failed: %s", strerror(-rc));
		json_object_foreach(due, name, v)
		{
			if (!json_object_get(pa->access->until, name) &&
			    !push(pa->access, json_integer_value(v), name))
				json_object_set(pa->access->until, name, v);
		}
		json_decref(due);
		if (pa->access->timer)
			mg_timer_del(pa->ctx, pa->access->timer);
		pa->access->timer = mg_timer_add(pa->ctx, RETRY_MS, 0, fire, pa);
		pa->access->timer_for = -1;
		if (pa->access->timer < 0)
			pa->access->timer = 0;
		return;
	}
	json_decref(due);
	arm(pa);
}

/* ---- RFC 3339 ---- */

static int digits(const char *s, int n, int *out)
{
	*out = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*out = *out * 10 + (s[i] - '0');
	}
	return 0;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static long long days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	long long era = y / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

int pa_time_parse(const char *text, json_int_t *seconds, char *err, size_t errlen)
{
	int y, mo, d, h, mi, s = 0, oh = 0, om = 0, sign = 0;
	const char *p = text ? text : "";
	size_t len = strlen(p);
	/* YYYY-MM-DDTHH:MM then :SS or not, then Z or +HH:MM / -HH:MM */
	int ok = len >= 17 && !digits(p, 4, &y) && p[4] == '-' && !digits(p + 5, 2, &mo) &&
	         p[7] == '-' && !digits(p + 8, 2, &d) && (p[10] == 'T' || p[10] == 't') &&
	         !digits(p + 11, 2, &h) && p[13] == ':' && !digits(p + 14, 2, &mi);
	p += 16;
	if (ok && *p == ':') {
		ok = !digits(p + 1, 2, &s);
		p += 3;
	}
	if (ok && (*p == 'Z' || *p == 'z') && p[1] == '\0') {
		sign = 0;
	} else if (ok && (*p == '+' || *p == '-') && strlen(p) == 6 && !digits(p + 1, 2, &oh) &&
	           p[3] == ':' && !digits(p + 4, 2, &om)) {
		sign = *p == '+' ? 1 : -1;
	} else {
		ok = 0;
	}
	if (ok)
		ok = y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) &&
		     h <= 23 && mi <= 59 && s <= 59 && oh <= 23 && om <= 59;
	if (!ok) {
		snprintf(err, errlen,
		         "invalid time \"%.40s\": write an RFC 3339 time with its zone, to the "
		         "minute or second (\"2026-12-31T18:00Z\", \"2026-12-31T19:00:00+01:00\")",
		         text ? text : "");
		return -EINVAL;
	}
	*seconds = (json_int_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) -
	           sign * (json_int_t)(oh * 3600 + om * 60);
	return 0;
}
