#include "takeover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_check(mg_ctx *ctx, void *arg)
{
	wgp_takeover_check(ctx, arg);
}

int wgp_takeover_watch(mg_ctx *ctx, struct wgp_takeovers *t, const wg_key key, const wg_key old_key)
{
	size_t i = 0;
	while (i < t->n && !wg_key_equal(t->pending[i].key, key))
		i++; /* the same takeover told again: watched anew */
	if (i == t->n && t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct wgp_takeover *p = realloc(t->pending, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->pending = p;
		t->cap = cap;
	}
	if (t->timer <= 0) {
		int id = mg_timer_add(ctx, WGP_TAKEOVER_CHECK_MS, 1, on_check, t);
		if (id < 0)
			return id;
		t->timer = id;
	}
	uint64_t now = mg_now_ms(ctx);
	struct wgp_takeover *w = &t->pending[i];
	memcpy(w->key, key, WG_KEY_LEN);
	memcpy(w->old_key, old_key, WG_KEY_LEN);
	w->start_at_ms = now + WGP_TAKEOVER_START_MS;
	w->until_ms = now + WGP_TAKEOVER_KEEP_OLD_MS;
	w->started = false;
	if (i == t->n)
		t->n++;
	return 0;
}

/* What one takeover needs now, appended to `set` (room for two peers):
 * false when it is over. */
static bool takeover_due(struct wgp_takeover *w, const struct wg_device *dev, uint64_t now,
                         struct wg_device *set, size_t *started)
{
	const struct wg_peer *p = wg_device_find_peer(dev, w->key);
	if (!p || p->last_handshake.tv_sec || now >= w->until_ms) {
		if (wg_device_find_peer(dev, w->old_key)) {
			struct wg_peer *old = &set->peers[set->n_peers++];
			memset(old, 0, sizeof(*old));
			memcpy(old->public_key, w->old_key, WG_KEY_LEN);
			old->flags = WG_PEER_REMOVE;
		}
		return false;
	}
	if (w->started || now < w->start_at_ms)
		return true;
	w->started = true;
	/* received bytes: the device's start is under way; another could
	 * cross it */
	if (p->rx_bytes)
		return true;
	struct wg_peer *s = &set->peers[set->n_peers++];
	memset(s, 0, sizeof(*s));
	memcpy(s->public_key, w->key, WG_KEY_LEN);
	s->flags = WG_PEER_HAS_KEEPALIVE | WG_PEER_UPDATE_ONLY;
	s->persistent_keepalive = WGP_TAKEOVER_KEEPALIVE;
	(*started)++;
	return true;
}

void wgp_takeover_check(mg_ctx *ctx, struct wgp_takeovers *t)
{
	struct wg_device *dev;
	char err[256];
	struct wg_device set = {.peers = calloc(2 * t->n + 1, sizeof(*set.peers))};
	if (!set.peers || wg_device_get(t->backend, t->ifname, &dev, err, sizeof(err))) {
		mg_warn(ctx, "cannot read %s for the handshakes of new keys: %s", t->ifname,
		        set.peers ? err : "out of memory");
		free(set.peers);
		return; /* tried again at the next check */
	}
	uint64_t now = mg_now_ms(ctx);
	size_t kept = 0, started = 0;
	for (size_t i = 0; i < t->n; i++)
		if (takeover_due(&t->pending[i], dev, now, &set, &started))
			t->pending[kept++] = t->pending[i];
	t->n = kept;
	wg_device_free(dev);
	snprintf(set.name, sizeof(set.name), "%s", t->ifname);
	if (set.n_peers && wg_device_set(t->backend, &set, err, sizeof(err)))
		mg_warn(ctx, "cannot set the peers of new device keys on %s: %s", t->ifname, err);
	else if (started)
		mg_info(
		    ctx,
		    "%zu new device keys sent nothing %d ms after the switch: the gateway starts "
		    "their handshake",
		    started, WGP_TAKEOVER_START_MS);
	free(set.peers);
	if (!t->n) {
		mg_timer_del(ctx, t->timer);
		t->timer = 0;
	}
}

void wgp_takeovers_free(mg_ctx *ctx, struct wgp_takeovers *t)
{
	if (t->timer > 0)
		mg_timer_del(ctx, t->timer);
	free(t->pending);
	memset(t, 0, sizeof(*t));
}
