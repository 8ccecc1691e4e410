#include "wan.h"

const struct cl_endpoint *cl_wan_fallback(const struct cl_gateway *g,
                                          const struct cl_endpoint *in_use, unsigned *tried,
                                          bool other_nodes)
{
	size_t n = g->n_endpoints, at = n - 1; /* not listed: start from the best */
	if (n < 2)
		return NULL;
	if (*tried + 1 >= n) {
		if (other_nodes)
			return NULL;
		*tried = 0; /* a single node: keep going round its uplinks */
	}
	for (size_t i = 0; i < n; i++)
		if (cl_endpoint_equal(&g->endpoints[i], in_use))
			at = i;
	(*tried)++;
	return &g->endpoints[(at + 1) % n];
}

const struct cl_endpoint *cl_wan_follow(const struct cl_gateway *before,
                                        const struct cl_gateway *after,
                                        const struct cl_endpoint *in_use)
{
	if (cl_endpoint_equal(&before->endpoint, &after->endpoint) ||
	    cl_endpoint_equal(&after->endpoint, in_use))
		return NULL;
	return &after->endpoint;
}
