/* The pure parts of multiwan: a link's state from its probes, the active
 * link, the endpoints' order. */
#include "multiwan.h"

const char *mw_state_name(enum mw_state state)
{
	switch (state) {
	case MW_UP:
		return "up";
	case MW_DOWN:
		return "down";
	case MW_UNKNOWN:
		break;
	}
	return "unknown";
}

static bool set_state(struct mw_health *h, enum mw_state state, uint64_t now_ms)
{
	if (h->state == state)
		return false;
	/* a link found up at the start needs no hold: nothing failed back */
	h->since_ms = h->state == MW_UNKNOWN ? 0 : now_ms;
	h->state = state;
	return true;
}

bool mw_health_result(struct mw_health *h, bool answered, int rise, int fall, uint64_t now_ms)
{
	if (answered) {
		h->ok_run++;
		h->fail_run = 0;
		if (h->state == MW_UNKNOWN || (h->state == MW_DOWN && h->ok_run >= rise))
			return set_state(h, MW_UP, now_ms);
	} else {
		h->fail_run++;
		h->ok_run = 0;
		if (h->state != MW_DOWN && h->fail_run >= fall)
			return set_state(h, MW_DOWN, now_ms);
	}
	return false;
}

static bool better(const struct mw_candidate *c, int a, int b)
{
	return b < 0 || c[a].priority < c[b].priority;
}

int mw_choose(const struct mw_candidate *c, size_t n, int current, bool failback, uint64_t hold_ms,
              uint64_t now_ms)
{
	int best = -1;
	for (size_t i = 0; i < n; i++)
		if (c[i].up && better(c, (int)i, best))
			best = (int)i;
	if (best < 0)
		return current; /* nowhere better to go: the routes stay */
	if (current < 0 || (size_t)current >= n || !c[current].up)
		return best;
	if (!failback || !better(c, best, current))
		return current;
	/* a link that came back must stay up for hold_ms: no bounce on a flap */
	return now_ms - c[best].up_since >= hold_ms ? best : current;
}

void mw_endpoint_order(const struct mw_candidate *c, size_t n, int active, size_t *order)
{
	size_t k = 0;
	if (active >= 0 && (size_t)active < n)
		order[k++] = (size_t)active;
	for (int pass = 0; pass < 2; pass++) {
		bool want_up = pass == 0;
		/* priorities are few and small: a selection by priority, stable */
		for (size_t placed = 0; placed < n; placed++) {
			int next = -1;
			for (size_t i = 0; i < n; i++) {
				bool taken = false;
				for (size_t j = 0; j < k; j++)
					taken = taken || order[j] == i;
				if (!taken && c[i].up == want_up && better(c, (int)i, next))
					next = (int)i;
			}
			if (next < 0)
				break;
			order[k++] = (size_t)next;
		}
	}
}
