/* The thread-free rules of the plugin host (see host.h). Models: nginx's
 * module signature check, strongSwan's plugin_loader dependency order. */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- descriptors ---- */

int host_check_descriptor(const struct mg_plugin *d, char *why, size_t len)
{
	/* A plugin of a newer minor may call members this core lacks. */
	if (d->abi_major != MG_ABI_MAJOR || d->abi_minor > MG_ABI_MINOR) {
		snprintf(why, len,
		         "built for plugin ABI %u.%u, this meshgated speaks %d.0 to %d.%d",
		         d->abi_major, d->abi_minor, MG_ABI_MAJOR, MG_ABI_MAJOR, MG_ABI_MINOR);
		return -EPROTO;
	}
	if (d->size < offsetof(struct mg_plugin, reserved)) {
		snprintf(why, len, "descriptor of %u bytes is too small for ABI %d", d->size,
		         MG_ABI_MAJOR);
		return -EPROTO;
	}
	if (d->ptr_size != sizeof(void *) || d->time_size != sizeof(time_t) ||
	    d->long_size != sizeof(long) || !d->build_signature ||
	    strcmp(d->build_signature, MG_BUILD_SIGNATURE)) {
		snprintf(why, len,
		         "built with signature \"%s\" (ptr %u, time_t %u), expected \"%s\"",
		         d->build_signature ? d->build_signature : "(none)", d->ptr_size,
		         d->time_size, MG_BUILD_SIGNATURE);
		return -EPROTO;
	}
	if (!d->name || !d->name[0] || strlen(d->name) >= HOST_NAME_MAX) {
		snprintf(why, len, "descriptor has no valid name");
		return -EINVAL;
	}
	return 0;
}

/* ---- dependency order ---- */

int host_provides(const char *name, const struct mg_plugin *d, const char *what)
{
	if (!strcmp(name, what))
		return 1;
	for (const char *const *f = d->provides; f && *f; f++)
		if (!strcmp(*f, what))
			return 1;
	return 0;
}

/* The index of the first accepted node providing `what`, or n. */
static size_t provider(const struct host_node *nodes, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (!nodes[i].refused && host_provides(nodes[i].name, nodes[i].desc, what))
			return i;
	return n;
}

/* Until nothing changes: a refusal can orphan another plugin. */
static void refuse_missing_dependencies(struct host_node *nodes, size_t n)
{
	int changed = 1;
	while (changed) {
		changed = 0;
		for (size_t i = 0; i < n; i++) {
			if (nodes[i].refused)
				continue;
			for (const char *const *dep = nodes[i].desc->depends; dep && *dep; dep++)
				if (provider(nodes, n, *dep) == n) {
					snprintf(nodes[i].why, sizeof(nodes[i].why),
					         "depends on '%s', which no loaded plugin provides",
					         *dep);
					nodes[i].refused = 1;
					changed = 1;
					break;
				}
		}
	}
}

enum mark { UNSEEN, VISITING, DONE };

struct sort {
	struct host_node *nodes;
	size_t n;
	enum mark *marks;
	size_t *order;
	size_t norder;
	char path[1024]; /* the chain being visited: a cycle's report */
};

/* Depth first; a back edge is a cycle, left in s->path. */
static int visit(struct sort *s, size_t i)
{
	if (s->marks[i] == DONE)
		return 0;
	size_t used = strlen(s->path);
	snprintf(s->path + used, sizeof(s->path) - used, "%s%s", used ? " -> " : "",
	         s->nodes[i].name);
	if (s->marks[i] == VISITING)
		return -ELOOP;
	s->marks[i] = VISITING;
	for (const char *const *dep = s->nodes[i].desc->depends; dep && *dep; dep++) {
		int rc = visit(s, provider(s->nodes, s->n, *dep));
		if (rc)
			return rc;
	}
	s->marks[i] = DONE;
	s->path[used] = '\0';
	s->order[s->norder++] = i;
	return 0;
}

/* One pass over the accepted nodes; on a cycle its members are refused. */
static int sort_once(struct sort *s)
{
	memset(s->marks, 0, s->n * sizeof(*s->marks));
	s->norder = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->nodes[i].refused)
			continue;
		s->path[0] = '\0';
		if (visit(s, i) == 0)
			continue;
		for (size_t j = 0; j < s->n; j++)
			if (s->marks[j] == VISITING) {
				snprintf(s->nodes[j].why, sizeof(s->nodes[j].why),
				         "dependency cycle: %s", s->path);
				s->nodes[j].refused = 1;
			}
		return -ELOOP;
	}
	return 0;
}

int host_order(struct host_node *nodes, size_t n, size_t *order, char *err, size_t errlen)
{
	struct sort *s = calloc(1, sizeof(*s));
	enum mark *marks = calloc(n + 1, sizeof(*marks));
	int rc = 0;
	if (!s || !marks) {
		free(s);
		free(marks);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*s = (struct sort){.nodes = nodes, .n = n, .marks = marks, .order = order};
	/* A refused cycle can orphan its dependents: sort again without them.
	 * Each round refuses at least one node, so this ends. */
	for (;;) {
		refuse_missing_dependencies(nodes, n);
		if (!sort_once(s))
			break;
		if (!rc) {
			snprintf(err, errlen, "dependency cycle: %s", s->path);
			rc = -ELOOP;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (nodes[i].refused)
			order[s->norder++] = i;
	free(marks);
	free(s);
	return rc;
}

int host_sort(struct host_node *nodes, size_t n, void **items, char *err, size_t errlen)
{
	size_t *order = calloc(n + 1, sizeof(*order));
	struct host_node *nodes_sorted = calloc(n + 1, sizeof(*nodes_sorted));
	void **items_sorted = calloc(n + 1, sizeof(*items_sorted));
	int rc = -ENOMEM;
	if (!order || !nodes_sorted || !items_sorted) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = host_order(nodes, n, order, err, errlen);
	if (rc == -ENOMEM)
		goto out;
	for (size_t i = 0; i < n; i++) {
		nodes_sorted[i] = nodes[order[i]];
		items_sorted[i] = items[order[i]];
	}
	if (n) { /* no plugins: the caller's arrays may be NULL */
		memcpy(nodes, nodes_sorted, n * sizeof(*nodes));
		memcpy(items, items_sorted, n * sizeof(*items));
	}
out:
	free(order);
	free(nodes_sorted);
	free(items_sorted);
	return rc;
}

/* ---- registration tables ---- */

int host_table_add(struct host_table *t, const char *name, union host_fn fn, void *arg)
{
	struct host_entry *entries = realloc(t->entries, (t->n + 1) * sizeof(*entries));
	if (!entries)
		return -ENOMEM;
	t->entries = entries;
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	entries[t->n++] = (struct host_entry){copy, fn, arg, 0};
	return 0;
}

/* Drops the deleted entries, keeping the order of the others. */
static void compact(struct host_table *t)
{
	size_t kept = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (t->entries[i].deleted)
			free(t->entries[i].name);
		else
			t->entries[kept++] = t->entries[i];
	}
	t->n = kept;
}

int host_table_del(struct host_table *t, const char *name)
{
	int rc = -ENOENT;
	for (size_t i = 0; i < t->n; i++)
		if (!t->entries[i].deleted && !strcmp(t->entries[i].name, name)) {
			t->entries[i].deleted = 1;
			rc = 0;
		}
	if (!t->walking)
		compact(t);
	return rc;
}

struct host_entry *host_table_find(struct host_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!t->entries[i].deleted && !strcmp(t->entries[i].name, name))
			return &t->entries[i];
	return NULL;
}

void host_table_walk_prefix(struct host_table *t, const char *topic,
                            void (*fn)(struct host_entry *e, void *arg), void *arg)
{
	t->walking++;
	/* entries added by a callback are not part of this walk */
	size_t n = t->n;
	for (size_t i = 0; i < n; i++) {
		struct host_entry *e = &t->entries[i];
		if (!e->deleted && !strncmp(topic, e->name, strlen(e->name))) {
			struct host_entry copy = *e; /* an add may move the array */
			fn(&copy, arg);
		}
	}
	if (--t->walking == 0)
		compact(t);
}

void host_table_clear(struct host_table *t)
{
	if (t->walking) { /* cleared from inside a walk: the walk compacts */
		for (size_t i = 0; i < t->n; i++)
			t->entries[i].deleted = 1;
		return;
	}
	for (size_t i = 0; i < t->n; i++)
		free(t->entries[i].name);
	free(t->entries);
	t->entries = NULL;
	t->n = 0;
}

void host_registrations_clear(struct host_registrations *r)
{
	host_table_clear(&r->services);
	host_table_clear(&r->subscriptions);
}
