/* The client's resolver step on its own, for resolver.sh:
 *   resolver_step apply IFNAME DNS...   (addresses and zones, as in a profile)
 *   resolver_step remove IFNAME */
#include <stdio.h>
#include <string.h>

#include "resolver.h"

int main(int argc, char **argv)
{
	static struct cl_profile p;

	if (argc >= 3 && !strcmp(argv[1], "remove")) {
		cl_resolver_remove(argv[2]);
		return 0;
	}
	if (argc < 3 || strcmp(argv[1], "apply") || argc - 3 > CL_MAX_DNS) {
		fprintf(stderr, "usage: %s apply IFNAME DNS... | remove IFNAME\n", argv[0]);
		return 2;
	}
	for (int i = 3; i < argc; i++)
		snprintf(p.dns[p.n_dns++], sizeof(p.dns[0]), "%s", argv[i]);
	cl_resolver_apply(argv[2], &p);
	return 0;
}
