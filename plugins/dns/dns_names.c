/* The names of the devices, by the rule of docs/dns.md: a device is
 * LABEL unless a service record has that name or an older device (then
 * the smaller id) has the same label; then it is LABEL-ID, unless that is
 * taken too (it then has no name).
 *
 * Kept incrementally: each name anyone claims has a claim holding the
 * devices whose label it is (oldest first), the devices that do not have
 * their label and whose fallback it is (in the rule's order: label, age,
 * id) and whether a service has it. A device that has its label claims no
 * fallback: most devices have one claim, not two.
 * Its owner follows from the claim alone, so a device change recomputes
 * the owners of the few names it touches, and of the fallbacks of the
 * devices that gained or lost their label: O(1) expected time, no pass
 * over all devices (a label held by k devices costs O(k)). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

/* Devices in order; most names have one, kept inline (cap 0). */
struct dev_list {
	uint32_t n, cap;
	union {
		struct dns_dev *one;
		struct dns_dev **many;
	};
};

static struct dns_dev **items(struct dev_list *l)
{
	return l->cap ? l->many : &l->one;
}

static struct dns_dev *first(const struct dev_list *l)
{
	return l->cap ? l->many[0] : l->one;
}

struct dns_claim {
	struct dns_claim *next;
	uint32_t hash;
	uint8_t service;
	struct dns_dev *owner;
	struct dev_list holders; /* the label of these, oldest first */
	struct dev_list fallers; /* the fallback of these, in the rule's order */
	char name[];
};

/* A chained hash table of entries starting with (next, hash). */
struct link {
	struct link *next;
	uint32_t hash;
};

struct table {
	struct link **buckets;
	size_t nbuckets, count; /* nbuckets: a power of two */
};

struct dns_names {
	struct table devices; /* by id */
	struct table claims;  /* by name */
};

static uint32_t text_hash(const char *s)
{
	return dns_hash((const uint8_t *)s, strlen(s));
}

static int table_grow(struct table *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
	struct link **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct link *l = t->buckets[i], *next; l; l = next) {
			next = l->next;
			l->next = b[l->hash & (n - 1)];
			b[l->hash & (n - 1)] = l;
		}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return 0;
}

static int table_add(struct table *t, struct link *l)
{
	if (t->count >= t->nbuckets && table_grow(t))
		return -ENOMEM;
	l->next = t->buckets[l->hash & (t->nbuckets - 1)];
	t->buckets[l->hash & (t->nbuckets - 1)] = l;
	t->count++;
	return 0;
}

static void table_del(struct table *t, struct link *l)
{
	struct link **p = &t->buckets[l->hash & (t->nbuckets - 1)];
	while (*p != l)
		p = &(*p)->next;
	*p = l->next;
	t->count--;
}

static struct link *table_first(const struct table *t, uint32_t hash)
{
	return t->nbuckets ? t->buckets[hash & (t->nbuckets - 1)] : NULL;
}

/* ---- the rule's orders ---- */

static int older(const struct dns_dev *x, const struct dns_dev *y)
{
	if (x->created != y->created)
		return x->created < y->created;
	return strcmp(x->id, y->id) < 0;
}

static int before_fallback(const struct dns_dev *x, const struct dns_dev *y)
{
	int c = strcmp(x->label->name, y->label->name);
	return c ? c < 0 : older(x, y);
}

static int list_insert(struct dev_list *l, struct dns_dev *dev,
                       int (*before)(const struct dns_dev *, const struct dns_dev *))
{
	if (l->n == (l->cap ? l->cap : 1)) {
		uint32_t cap = l->cap ? l->cap * 2 : 4;
		struct dns_dev **v = malloc(cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		memcpy(v, items(l), l->n * sizeof(*v));
		if (l->cap)
			free(l->many);
		l->many = v;
		l->cap = cap;
	}
	struct dns_dev **v = items(l);
	uint32_t at = l->n;
	while (at && before(dev, v[at - 1]))
		at--;
	memmove(v + at + 1, v + at, (l->n - at) * sizeof(*v));
	v[at] = dev;
	l->n++;
	return 0;
}

static void list_remove(struct dev_list *l, const struct dns_dev *dev)
{
	struct dns_dev **v = items(l);
	for (uint32_t i = 0; i < l->n; i++)
		if (v[i] == dev) {
			memmove(v + i, v + i + 1, (l->n - i - 1) * sizeof(*v));
			l->n--;
			return;
		}
}

static int list_has(struct dev_list *l, const struct dns_dev *dev)
{
	struct dns_dev **v = items(l);
	for (uint32_t i = 0; i < l->n; i++)
		if (v[i] == dev)
			return 1;
	return 0;
}

static void list_free(struct dev_list *l)
{
	if (l->cap)
		free(l->many);
}

/* ---- claims ---- */

static struct dns_claim *claim_find(const struct dns_names *t, const char *name)
{
	uint32_t hash = text_hash(name);
	for (struct link *l = table_first(&t->claims, hash); l; l = l->next) {
		struct dns_claim *c = (struct dns_claim *)l;
		if (c->hash == hash && !strcmp(c->name, name))
			return c;
	}
	return NULL;
}

static struct dns_claim *claim_get(struct dns_names *t, const char *name)
{
	struct dns_claim *c = claim_find(t, name);
	if (c)
		return c;
	size_t len = strlen(name);
	c = calloc(1, sizeof(*c) + len + 1);
	if (!c)
		return NULL;
	memcpy(c->name, name, len + 1);
	c->hash = text_hash(name);
	if (table_add(&t->claims, (struct link *)c)) {
		free(c);
		return NULL;
	}
	return c;
}

static void claim_release(struct dns_names *t, struct dns_claim *c)
{
	if (c->service || c->holders.n || c->fallers.n)
		return;
	table_del(&t->claims, (struct link *)c);
	list_free(&c->holders);
	list_free(&c->fallers);
	free(c);
}

static int owns_label(const struct dns_dev *dev)
{
	return !dev->label->service && first(&dev->label->holders) == dev;
}

/* Who has the name: nobody when a service has it, else the oldest device
 * of that label, else the first device whose fallback it is and that
 * does not have its own label. */
static struct dns_dev *claim_owner(struct dns_claim *c)
{
	if (c->service)
		return NULL;
	if (c->holders.n)
		return first(&c->holders);
	struct dns_dev **fallers = items(&c->fallers);
	for (uint32_t i = 0; i < c->fallers.n; i++)
		if (!owns_label(fallers[i]))
			return fallers[i];
	return NULL;
}

static int named_of(const struct dns_dev *dev)
{
	if (owns_label(dev))
		return DNS_NAMED_LABEL;
	return dev->fallback && dev->fallback->owner == dev ? DNS_NAMED_FALLBACK : DNS_NAMED_NONE;
}

const char *dns_dev_name(const struct dns_dev *dev, int named)
{
	if (named == DNS_NAMED_LABEL)
		return dev->label->name;
	return named == DNS_NAMED_FALLBACK && dev->fallback ? dev->fallback->name : NULL;
}

const char *dns_dev_user(const struct dns_dev *dev)
{
	return dev->id + strlen(dev->id) + 1;
}

/* A device that does not have its label is among the fallers of its
 * fallback (LABEL-ID), made then; one that has it is taken out. Its
 * fallback pointer stays until the change is reported (the name it may
 * have had): forget_fallback() drops it. 1 when it moved, 0 when not,
 * -ENOMEM. */
static int sync_fallback(struct dns_names *t, struct dns_dev *dev)
{
	int wants = !owns_label(dev);
	if (dev->fallback && wants == list_has(&dev->fallback->fallers, dev))
		return 0;
	if (!dev->fallback && !wants)
		return 0;
	if (!wants) {
		list_remove(&dev->fallback->fallers, dev);
		return 1;
	}
	if (!dev->fallback) {
		char name[DNS_LABEL_MAX + 1];
		dns_device_fallback(dev->label->name, dev->id, name);
		if (!(dev->fallback = claim_get(t, name)))
			return -ENOMEM;
	}
	if (list_insert(&dev->fallback->fallers, dev, before_fallback))
		return -ENOMEM;
	return 1;
}

static void forget_fallback(struct dns_dev *dev)
{
	if (dev->fallback && !list_has(&dev->fallback->fallers, dev))
		dev->fallback = NULL;
}

/* ---- the table ---- */

struct dns_names *dns_names_new(void)
{
	return calloc(1, sizeof(struct dns_names));
}

static void table_free(struct table *t, void (*fn)(struct link *))
{
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct link *l = t->buckets[i], *next; l; l = next) {
			next = l->next;
			fn(l);
		}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

static void claim_free(struct link *l)
{
	struct dns_claim *c = (struct dns_claim *)l;
	list_free(&c->holders);
	list_free(&c->fallers);
	free(c);
}

static void dev_free(struct link *l)
{
	free(l);
}

void dns_names_free(struct dns_names *t)
{
	if (!t)
		return;
	table_free(&t->claims, claim_free);
	table_free(&t->devices, dev_free);
	free(t);
}

size_t dns_names_devices(const struct dns_names *t)
{
	return t->devices.count;
}

void dns_names_foreach(const struct dns_names *t, void (*fn)(const struct dns_dev *dev, void *arg),
                       void *arg)
{
	for (size_t i = 0; i < t->devices.nbuckets; i++)
		for (struct link *l = t->devices.buckets[i]; l; l = l->next)
			fn((const struct dns_dev *)l, arg);
}

static struct dns_dev *dev_find(const struct dns_names *t, const char *id)
{
	uint32_t hash = text_hash(id);
	for (struct link *l = table_first(&t->devices, hash); l; l = l->next) {
		struct dns_dev *dev = (struct dns_dev *)l;
		if (dev->hash == hash && !strcmp(dev->id, id))
			return dev;
	}
	return NULL;
}

/* Takes a device out of its claims, which stay (the caller releases them). */
static void dev_unclaim(struct dns_dev *dev)
{
	list_remove(&dev->label->holders, dev);
	if (dev->fallback)
		list_remove(&dev->fallback->fallers, dev);
}

/* Its label: its fallback comes with sync_fallback(), when it needs one. */
static int dev_claim(struct dns_names *t, struct dns_dev *dev, const char *label)
{
	dev->label = claim_get(t, label);
	if (!dev->label)
		return -ENOMEM;
	if (list_insert(&dev->label->holders, dev, older)) {
		claim_release(t, dev->label);
		return -ENOMEM;
	}
	return 0;
}

/* A change: the owners of the claims it touched are recomputed, then
 * those of the fallbacks of the devices whose owning changed, until
 * nothing changes (a few steps: losing a fallback claims nothing else). */
#define MAX_WORK 64

struct work {
	struct dns_claim *claim[MAX_WORK];
	size_t nclaim;
	struct dns_dev *dev[MAX_WORK];
	size_t ndev;
	struct dns_dev *gone; /* the device's old entry */
};

static int work_claim(struct work *w, struct dns_claim *c)
{
	for (size_t i = 0; i < w->nclaim; i++)
		if (w->claim[i] == c)
			return 0;
	if (w->nclaim == MAX_WORK)
		return -E2BIG;
	w->claim[w->nclaim++] = c;
	return 0;
}

static int work_dev(struct work *w, struct dns_dev *dev)
{
	if (dev == w->gone)
		return 0;
	for (size_t i = 0; i < w->ndev; i++)
		if (w->dev[i] == dev)
			return 0;
	if (w->ndev == MAX_WORK)
		return -E2BIG;
	w->dev[w->ndev++] = dev;
	return dev->fallback ? work_claim(w, dev->fallback) : 0;
}

/* The holders of a label claim whose having it changed (the first ones,
 * before and after the change) join or leave their fallback claims. A
 * label held by k devices costs O(k). */
static int sync_holders(struct dns_names *t, struct work *w, struct dns_claim *label)
{
	struct dns_dev **v = items(&label->holders);
	for (uint32_t i = 0; i < label->holders.n; i++) {
		int moved = sync_fallback(t, v[i]);
		if (moved < 0)
			return moved;
		if (moved && (work_dev(w, v[i]) || work_claim(w, v[i]->fallback)))
			return -E2BIG;
	}
	return 0;
}

static int settle(struct work *w)
{
	for (size_t i = 0; i < w->nclaim; i++) {
		struct dns_claim *c = w->claim[i];
		struct dns_dev *owner = claim_owner(c), *was = c->owner;
		if (owner == was)
			continue;
		c->owner = owner;
		if ((was && work_dev(w, was)) || (owner && work_dev(w, owner)))
			return -E2BIG;
	}
	return 0;
}

/* The names that went first, then those that came: two devices may swap
 * a name, or share an address. */
static void report(struct work *w, dns_renamed_fn fn, void *arg)
{
	int named[MAX_WORK];
	if (fn && w->gone && w->gone->named)
		fn(w->gone, w->gone->named, 0, arg);
	for (size_t i = 0; i < w->ndev; i++) {
		named[i] = named_of(w->dev[i]);
		if (fn && w->dev[i]->named && named[i] != w->dev[i]->named)
			fn(w->dev[i], w->dev[i]->named, 0, arg);
	}
	for (size_t i = 0; i < w->ndev; i++) {
		if (fn && named[i] && named[i] != w->dev[i]->named)
			fn(w->dev[i], named[i], 1, arg);
		w->dev[i]->named = (int8_t)named[i];
	}
}

static int change(struct dns_names *t, struct dns_dev *old, const struct dns_dev_info *info,
                  dns_renamed_fn fn, void *arg)
{
	struct work w = {.gone = old};
	struct dns_dev *dev = NULL;
	int rc = 0;
	if (info) {
		size_t idlen = strlen(info->id), userlen = strlen(info->user);
		dev = calloc(1, sizeof(*dev) + idlen + 1 + userlen + 1);
		if (!dev)
			return -ENOMEM;
		memcpy(dev->id, info->id, idlen + 1);
		memcpy(dev->id + idlen + 1, info->user, userlen + 1);
		dev->hash = text_hash(info->id);
		dev->created = info->created;
		dev->family = (uint8_t)info->family;
		memcpy(dev->addr, info->addr, sizeof(dev->addr));
		if (dev_claim(t, dev, info->label)) {
			free(dev);
			return -ENOMEM;
		}
		if (table_add(&t->devices, (struct link *)dev)) {
			dev_unclaim(dev);
			claim_release(t, dev->label);
			free(dev);
			return -ENOMEM;
		}
		work_claim(&w, dev->label);
		work_dev(&w, dev);
	}
	if (old) {
		dev_unclaim(old);
		table_del(&t->devices, (struct link *)old);
		work_claim(&w, old->label);
		if (old->fallback)
			work_claim(&w, old->fallback);
	}
	if ((dev && sync_holders(t, &w, dev->label)) || (old && sync_holders(t, &w, old->label)) ||
	    settle(&w)) {
		/* cannot happen by the rule's shape but for want of memory;
		 * stay correct anyway: settle every name, the caller rebuilds */
		dns_names_settle_all(t);
		rc = 1;
	} else {
		report(&w, fn, arg);
		for (size_t i = 0; i < w.ndev; i++)
			forget_fallback(w.dev[i]);
		for (size_t i = 0; i < w.nclaim; i++)
			claim_release(t, w.claim[i]);
	}
	free(old);
	return rc;
}

int dns_names_put(struct dns_names *t, const struct dns_dev_info *info, dns_renamed_fn fn,
                  void *arg)
{
	struct dns_dev *old = dev_find(t, info->id);
	if (old && old->created == info->created && old->family == info->family &&
	    !memcmp(old->addr, info->addr, sizeof(old->addr)) &&
	    !strcmp(old->label->name, info->label) && !strcmp(dns_dev_user(old), info->user))
		return 0;
	return change(t, old, info, fn, arg);
}

int dns_names_del(struct dns_names *t, const char *id, dns_renamed_fn fn, void *arg)
{
	struct dns_dev *old = dev_find(t, id);
	return old ? change(t, old, NULL, fn, arg) : 0;
}

void dns_names_clear(struct dns_names *t)
{
	table_free(&t->claims, claim_free);
	table_free(&t->devices, dev_free);
}

int dns_names_services(struct dns_names *t, json_t *names)
{
	const char *name;
	json_t *v;
	for (size_t i = 0; i < t->claims.nbuckets; i++)
		for (struct link *l = t->claims.buckets[i]; l; l = l->next)
			((struct dns_claim *)l)->service = 0;
	json_object_foreach(names, name, v)
	{
		struct dns_claim *c = claim_get(t, name);
		if (!c)
			return -ENOMEM;
		c->service = 1;
	}
	dns_names_settle_all(t);
	return 0;
}

void dns_names_settle_all(struct dns_names *t)
{
	/* first who wants a fallback, then the owners, which depend on it */
	for (size_t i = 0; i < t->devices.nbuckets; i++)
		for (struct link *l = t->devices.buckets[i]; l; l = l->next)
			sync_fallback(t, (struct dns_dev *)l); /* no memory: no fallback */
	for (size_t i = 0; i < t->claims.nbuckets; i++)
		for (struct link *l = t->claims.buckets[i]; l; l = l->next)
			((struct dns_claim *)l)->owner = claim_owner((struct dns_claim *)l);
	for (size_t i = 0; i < t->devices.nbuckets; i++)
		for (struct link *l = t->devices.buckets[i]; l; l = l->next) {
			struct dns_dev *dev = (struct dns_dev *)l;
			forget_fallback(dev);
			dev->named = (int8_t)named_of(dev);
		}
	for (size_t i = 0; i < t->claims.nbuckets; i++)
		for (struct link *l = t->claims.buckets[i], *next; l; l = next) {
			next = l->next;
			claim_release(t, (struct dns_claim *)l);
		}
}
