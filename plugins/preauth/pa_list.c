/* The device list's index: every device's id, in order, with the texts a
 * person searches it by (id, user, name, address, public key, role,
 * state) lower-cased into one string. It follows pa->devices (the cache
 * of every device's device.changed payload) at each of its changes, so
 * that a page or a search of 10,000 devices is a walk over an array and
 * strstr over short strings: no record parsed, nothing sorted per
 * request (preauth.device.list, docs/preauth.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "preauth.h"

struct entry {
	char *id;
	char *user; /* for the exact filter by user */
	char *text; /* the searched texts, lower-cased, '\n' between them */
};

struct pa_list {
	struct entry *v; /* ordered by id */
	size_t n, cap;
};

struct pa_list *pa_list_new(void)
{
	return calloc(1, sizeof(struct pa_list));
}

static void entry_free(struct entry *e)
{
	free(e->id);
	free(e->user);
	free(e->text);
}

void pa_list_clear(struct pa_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		entry_free(&l->v[i]);
	l->n = 0;
}

void pa_list_free(struct pa_list *l)
{
	if (!l)
		return;
	pa_list_clear(l);
	free(l->v);
	free(l);
}

/* The index of the first entry whose id is not below `id`. */
static size_t lower_bound(const struct pa_list *l, const char *id)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(l->v[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void pa_list_lower(char *text)
{
	for (char *p = text; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

static char *searched_text(const char *id, json_t *cached)
{
	static const char *const searched[] = {"user",       "name", "address",
	                                       "public_key", "role", "state"};
	size_t len = strlen(id) + 1;
	for (size_t i = 0; i < sizeof(searched) / sizeof(searched[0]); i++) {
		const char *t = json_string_value(json_object_get(cached, searched[i]));
		len += (t ? strlen(t) : 0) + 1;
	}
	char *text = malloc(len), *at = text;
	if (!text)
		return NULL;
	at = stpcpy(at, id);
	for (size_t i = 0; i < sizeof(searched) / sizeof(searched[0]); i++) {
		const char *t = json_string_value(json_object_get(cached, searched[i]));
		*at++ = '\n';
		at = stpcpy(at, t ? t : "");
	}
	pa_list_lower(text);
	return text;
}

int pa_list_put(struct pa_list *l, const char *id, json_t *cached)
{
	const char *user = json_string_value(json_object_get(cached, "user"));
	struct entry e = {strdup(id), strdup(user ? user : ""), searched_text(id, cached)};
	if (!e.id || !e.user || !e.text) {
		entry_free(&e);
		return -ENOMEM;
	}
	size_t at = lower_bound(l, id);
	if (at < l->n && !strcmp(l->v[at].id, id)) {
		entry_free(&l->v[at]);
		l->v[at] = e;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct entry *grown = realloc(l->v, cap * sizeof(*grown));
		if (!grown) {
			entry_free(&e);
			return -ENOMEM;
		}
		l->v = grown;
		l->cap = cap;
	}
	memmove(&l->v[at + 1], &l->v[at], (l->n - at) * sizeof(*l->v));
	l->v[at] = e;
	l->n++;
	return 0;
}

void pa_list_del(struct pa_list *l, const char *id)
{
	size_t at = lower_bound(l, id);
	if (at == l->n || strcmp(l->v[at].id, id))
		return;
	entry_free(&l->v[at]);
	memmove(&l->v[at], &l->v[at + 1], (l->n - at - 1) * sizeof(*l->v));
	l->n--;
}

json_t *pa_list_page(const struct pa_list *l, const char *user, const char *q, const char *after,
                     size_t limit, const char **next)
{
	json_t *page = json_array();
	*next = NULL;
	if (!page)
		return NULL;
	size_t i = 0;
	if (after) {
		i = lower_bound(l, after);
		if (i < l->n && !strcmp(l->v[i].id, after))
			i++;
	}
	for (; i < l->n; i++) {
		if (user && strcmp(l->v[i].user, user))
			continue;
		if (q && !strstr(l->v[i].text, q))
			continue;
		if (limit && json_array_size(page) == limit) {
			*next = json_string_value(json_array_get(page, limit - 1));
			break;
		}
		json_array_append_new(page, json_string(l->v[i].id));
	}
	return page;
}
