/* The device's resolver for the VPN's zone: the gateway's name server for
 * its internal zone, set per link where the system allows it
 * (systemd-resolved through resolvectl, else resolvconf). Nothing is
 * touched inside a network namespace: the host's resolver serves only its
 * own namespace, so a test or a container leaves it alone. */
#ifndef CL_RESOLVER_H
#define CL_RESOLVER_H

#include "config_file.h"

/* Best effort: prints what it did or why not; never fails the tunnel. */
void cl_resolver_apply(const char *ifname, const struct cl_profile *p);
void cl_resolver_remove(const char *ifname);

#endif
