#include "rotate_gw.h"

#include <stdio.h>
#include <string.h>

bool cl_rotate_gw_plan(struct cl_rotate_gw *r, const struct cl_nodes *nodes, const char *node,
                       const uint8_t peer_key[CL_KEY_LEN], long long received)
{
	const struct cl_gateway *g = NULL;
	for (size_t i = 0; node && i < nodes->n_gateways && !g; i++)
		if (!strcmp(nodes->gateways[i].name, node))
			g = &nodes->gateways[i];
	if (!g || !g->has_next || !memcmp(g->next_public_key, peer_key, CL_KEY_LEN))
		return r->planned;
	if (r->planned && !strcmp(r->node, node) && !memcmp(r->key, g->next_public_key, CL_KEY_LEN))
		return true; /* the same switch, told again: its first time stands */
	r->planned = true;
	r->quiet = r->rx_known = false;
	snprintf(r->node, sizeof(r->node), "%s", node);
	memcpy(r->key, g->next_public_key, CL_KEY_LEN);
	r->at = received + g->switch_in_ms + CL_ROTATE_GW_MARGIN_MS;
	r->latest = r->at + CL_ROTATE_GW_WAIT_MS;
	/* the node stops answering during its switch, from its switch time on */
	r->hold_from = r->at - 2 * CL_ROTATE_GW_MARGIN_MS;
	r->hold_until = r->latest + CL_ROTATE_GW_HOLD_MS;
	return true;
}

bool cl_rotate_gw_look(struct cl_rotate_gw *r, bool unanswered, const uint64_t *rx_bytes)
{
	r->quiet = unanswered && rx_bytes && r->rx_known && *rx_bytes == r->rx_bytes;
	r->rx_known = rx_bytes != NULL;
	if (rx_bytes)
		r->rx_bytes = *rx_bytes;
	return r->quiet;
}

bool cl_rotate_gw_due(struct cl_rotate_gw *r, long long now, bool node_silent)
{
	if (!r->planned || now < r->at || (!node_silent && now < r->latest))
		return false;
	r->planned = false;
	r->hold_until = now + CL_ROTATE_GW_HOLD_MS;
	r->check_at = now + CL_ROTATE_GW_RENEW_MS;
	r->renews_left = CL_ROTATE_GW_RENEWS;
	return true;
}

bool cl_rotate_gw_holds(const struct cl_rotate_gw *r, long long now)
{
	return r->hold_until && now >= r->hold_from && now < r->hold_until;
}

void cl_rotate_gw_answered(struct cl_rotate_gw *r, long long now)
{
	if (!r->planned && r->hold_until && now > r->at)
		r->hold_until = 0;
}

bool cl_rotate_gw_check_due(const struct cl_rotate_gw *r, long long now)
{
	return r->check_at && now >= r->check_at;
}

bool cl_rotate_gw_renew(struct cl_rotate_gw *r, bool handshook, long long now)
{
	if (handshook || r->renews_left <= 0) {
		r->check_at = 0;
		return false;
	}
	r->renews_left--;
	r->check_at = now + CL_ROTATE_GW_RENEW_MS;
	/* the hold lasts for the handshake the new set starts */
	if (r->hold_until && r->hold_until < r->check_at)
		r->hold_until = r->check_at;
	return true;
}
