/* The agent's side of a gateway node's key switch (client/rotate_gw.h):
 * the peer is replaced from a margin after the node's switch time, counted
 * from the answer's arrival, once the node's probe answers stop (it
 * switched), or at the latest a while later; a plan told again keeps its first time; a key
 * the peer has already, or another node's switch, plans nothing; the
 * agent holds still from just before the switch until an answer after it
 * or the hold's end; a new peer without a handshake a while after the
 * switch is set anew, a bounded number of times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rotate_gw.h"

static void two_nodes(struct cl_nodes *n)
{
	memset(n, 0, sizeof(*n));
	n->n_gateways = 2;
	snprintf(n->gateways[0].name, sizeof(n->gateways[0].name), "gw1");
	snprintf(n->gateways[1].name, sizeof(n->gateways[1].name), "gw2");
	memset(n->gateways[0].public_key, 1, CL_KEY_LEN);
	memset(n->gateways[1].public_key, 3, CL_KEY_LEN);
	n->gateways[0].has_next = true;
	memset(n->gateways[0].next_public_key, 2, CL_KEY_LEN);
	n->gateways[0].switch_in_ms = 5000;
}

static void switch_is_planned_after_the_nodes(void **state)
{
	(void)state;
	struct cl_nodes n;
	struct cl_rotate_gw r = {0};
	uint8_t peer[CL_KEY_LEN];
	two_nodes(&n);
	memset(peer, 1, sizeof(peer));
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 1000));
	assert_int_equal(r.at, 1000 + 5000 + CL_ROTATE_GW_MARGIN_MS);
	assert_int_equal(r.key[0], 2);
	assert_string_equal(r.node, "gw1");

	/* told again later (another config read): the first time stands */
	n.gateways[0].switch_in_ms = 3000;
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 2500));
	assert_int_equal(r.at, 6100);

	/* holds still from before the node's switch */
	assert_false(cl_rotate_gw_holds(&r, 5000));
	assert_true(cl_rotate_gw_holds(&r, 5950));
	assert_false(cl_rotate_gw_due(&r, 6099, true));
	cl_rotate_gw_answered(&r, 6050); /* an answer before the switch: the hold stays */
	assert_true(cl_rotate_gw_holds(&r, 6090));
	/* the node still answers: it is switching (its sessions carry) */
	assert_false(cl_rotate_gw_due(&r, 6100, false));
	cl_rotate_gw_answered(&r, 6150); /* while waiting: the hold stays */
	assert_true(cl_rotate_gw_holds(&r, 6900));
	/* its answers stopped: it switched */
	assert_true(cl_rotate_gw_due(&r, 7000, true));
	assert_false(cl_rotate_gw_due(&r, 7001, true)); /* once */
	assert_true(cl_rotate_gw_holds(&r, 7100));
	cl_rotate_gw_answered(&r, 7050); /* the handshake is done */
	assert_false(cl_rotate_gw_holds(&r, 7100));
}

/* A node that goes on answering: the peer is replaced at the latest. */
static void switch_at_the_latest(void **state)
{
	(void)state;
	struct cl_nodes n;
	struct cl_rotate_gw r = {0};
	uint8_t peer[CL_KEY_LEN];
	two_nodes(&n);
	memset(peer, 1, sizeof(peer));
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 0));
	assert_false(cl_rotate_gw_due(&r, 5100 + CL_ROTATE_GW_WAIT_MS - 1, false));
	assert_true(cl_rotate_gw_holds(&r, 5100 + CL_ROTATE_GW_WAIT_MS - 1));
	assert_true(cl_rotate_gw_due(&r, 5100 + CL_ROTATE_GW_WAIT_MS, false));
}

/* Quiet means the probe unanswered AND nothing received since the look
 * before: a late answer while other answers still come is no switch. */
static void quiet_needs_silence_and_no_bytes(void **state)
{
	(void)state;
	struct cl_nodes n;
	struct cl_rotate_gw r = {0};
	uint8_t peer[CL_KEY_LEN];
	uint64_t rx = 1000;
	two_nodes(&n);
	memset(peer, 1, sizeof(peer));
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 0));
	assert_false(cl_rotate_gw_look(&r, true, &rx)); /* the first look: nothing to compare */
	rx = 1500;
	assert_false(cl_rotate_gw_look(&r, true, &rx)); /* unanswered, but pings' answers came */
	assert_false(cl_rotate_gw_due(&r, 5100, r.quiet));
	assert_false(cl_rotate_gw_look(&r, false, &rx)); /* answered */
	assert_false(cl_rotate_gw_look(&r, true, NULL)); /* the interface unread */
	assert_false(cl_rotate_gw_look(&r, true, &rx));  /* after an unread one: no base */
	assert_true(cl_rotate_gw_look(&r, true, &rx));   /* unanswered, nothing came */
	assert_true(cl_rotate_gw_due(&r, 5200, r.quiet));
	/* a new plan starts without the old look */
	n.gateways[0].next_public_key[0] = 9;
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 10000));
	assert_false(r.quiet);
	assert_false(cl_rotate_gw_look(&r, true, &rx));
}

static void hold_ends_by_itself(void **state)
{
	(void)state;
	struct cl_nodes n;
	struct cl_rotate_gw r = {0};
	uint8_t peer[CL_KEY_LEN];
	two_nodes(&n);
	memset(peer, 1, sizeof(peer));
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 0));
	assert_true(cl_rotate_gw_due(&r, 5100, true));
	assert_true(cl_rotate_gw_holds(&r, 5100 + CL_ROTATE_GW_HOLD_MS - 1));
	assert_false(cl_rotate_gw_holds(&r, 5100 + CL_ROTATE_GW_HOLD_MS));
}

static void nothing_to_plan(void **state)
{
	(void)state;
	struct cl_nodes n;
	struct cl_rotate_gw r = {0};
	uint8_t peer[CL_KEY_LEN];
	two_nodes(&n);
	memset(peer, 3, sizeof(peer));
	assert_false(cl_rotate_gw_plan(&r, &n, "gw2", peer, 0)); /* gw1 switches, not gw2 */
	assert_false(cl_rotate_gw_plan(&r, &n, NULL, peer, 0));  /* no node in use */
	memset(peer, 2, sizeof(peer));
	assert_false(cl_rotate_gw_plan(&r, &n, "gw1", peer, 0)); /* the peer has it already */
	n.gateways[0].has_next = false;
	memset(peer, 1, sizeof(peer));
	assert_false(cl_rotate_gw_plan(&r, &n, "gw1", peer, 0));
	assert_false(cl_rotate_gw_due(&r, 1000000, true));
	assert_false(cl_rotate_gw_holds(&r, 0));
}

static void unanswered_switch_is_set_anew(void **state)
{
	(void)state;
	struct cl_nodes n;
	struct cl_rotate_gw r = {0};
	uint8_t peer[CL_KEY_LEN];
	two_nodes(&n);
	memset(peer, 1, sizeof(peer));
	assert_false(cl_rotate_gw_check_due(&r, 0)); /* nothing switched: nothing to check */
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 0));
	assert_false(cl_rotate_gw_check_due(&r, 5100));
	assert_true(cl_rotate_gw_due(&r, 5100, true));
	long long t = 5100 + CL_ROTATE_GW_RENEW_MS;
	assert_false(cl_rotate_gw_check_due(&r, t - 1));
	assert_true(cl_rotate_gw_check_due(&r, t));
	/* no handshake: set anew, every CL_ROTATE_GW_RENEW_MS, the hold kept
	 * for the handshake each set starts */
	for (int i = 0; i < CL_ROTATE_GW_RENEWS; i++) {
		assert_true(cl_rotate_gw_check_due(&r, t));
		assert_true(cl_rotate_gw_renew(&r, false, t));
		assert_false(cl_rotate_gw_check_due(&r, t + CL_ROTATE_GW_RENEW_MS - 1));
		t += CL_ROTATE_GW_RENEW_MS;
		assert_true(cl_rotate_gw_holds(&r, t - 1));
	}
	/* the tries used up: the checks end, WireGuard's own retries remain */
	assert_true(cl_rotate_gw_check_due(&r, t));
	assert_false(cl_rotate_gw_renew(&r, false, t));
	assert_false(cl_rotate_gw_check_due(&r, t + 100000));
}

static void answered_switch_is_left_alone(void **state)
{
	(void)state;
	struct cl_nodes n;
	struct cl_rotate_gw r = {0};
	uint8_t peer[CL_KEY_LEN];
	two_nodes(&n);
	memset(peer, 1, sizeof(peer));
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 0));
	assert_true(cl_rotate_gw_due(&r, 5100, true));
	assert_true(cl_rotate_gw_renew(&r, false, 5400)); /* the first set went unanswered */
	assert_false(cl_rotate_gw_renew(&r, true, 5700)); /* the second handshook */
	assert_false(cl_rotate_gw_check_due(&r, 100000));
	/* a later switch starts its checks afresh */
	memset(peer, 2, sizeof(peer));
	memset(n.gateways[0].next_public_key, 4, CL_KEY_LEN);
	assert_true(cl_rotate_gw_plan(&r, &n, "gw1", peer, 200000));
	assert_true(cl_rotate_gw_due(&r, 205100, true));
	assert_int_equal(r.renews_left, CL_ROTATE_GW_RENEWS);
	assert_true(cl_rotate_gw_check_due(&r, 205100 + CL_ROTATE_GW_RENEW_MS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(switch_is_planned_after_the_nodes),
	    cmocka_unit_test(switch_at_the_latest),
	    cmocka_unit_test(quiet_needs_silence_and_no_bytes),
	    cmocka_unit_test(hold_ends_by_itself),
	    cmocka_unit_test(nothing_to_plan),
	    cmocka_unit_test(unanswered_switch_is_set_anew),
	    cmocka_unit_test(answered_switch_is_left_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
