/* The agent: what `meshgate up` leaves running for an interface (a daemon;
 * `meshgate agent` is the same in the foreground, for systemd). It probes
 * its gateway node through the tunnel every PROBE_MS (lib/probe/probe.h),
 * switches its one WireGuard peer to another node when its node stops
 * answering or names another active node, and fetches the device config
 * (meshgate sync's, verified TLS) when the probe's config epoch changes:
 * a route added or a role changed reaches the device within a second.
 *
 * Files in the state dir: IFNAME.agent.pid (locked while the agent runs:
 * one agent per interface), IFNAME.agent.json (what `meshgate status`
 * shows: the gateway, the candidates, the last switch), IFNAME.agent.log
 * (its output, when a daemon). */
#ifndef MESHGATE_CLIENT_AGENT_H
#define MESHGATE_CLIENT_AGENT_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "config_file.h"
#include "err.h"
#include "tunnel.h"

struct cl_agent_opts {
	struct cl_tunnel_opts tun;
	const char *config_path; /* CONFIG_DIR/IFNAME.conf */
	volatile sig_atomic_t *stop;
	unsigned mtu; /* > 0: the tunnel's MTU, fixed (meshgate up --mtu): no discovery */
};

/* Does a device with this saved config get an agent from `meshgate up`?
 * When its gateway answers probes and has more than one node. */
bool cl_agent_wanted(const struct cl_profile *p);

/* Runs the agent until *stop, the tunnel goes away or the device is no
 * longer enrolled. Returns the exit code. */
int cl_agent_run(const struct cl_agent_opts *o);

/* Starts `argv` (meshgate agent ...; argv[0] ignored: this very program)
 * as a daemon (double fork, setsid, output to STATE_DIR/IFNAME.agent.log)
 * and waits until it holds its pid file. 0 with its pid, or -1 with err. */
int cl_agent_spawn(char *const argv[], const struct cl_tunnel_opts *tun, pid_t *pid,
                   struct cl_err *err);

/* The pid of the agent running for this interface (its pid file names a
 * process that is `meshgate agent` of this interface), or 0. */
pid_t cl_agent_running(const struct cl_tunnel_opts *tun);

/* Stops the running agent (SIGTERM, then waits up to 3 s; SIGKILL after).
 * 0 also when none runs. */
int cl_agent_stop(const struct cl_tunnel_opts *tun, struct cl_err *err);

/* What the running agent last wrote (IFNAME.agent.json), or NULL. */
json_t *cl_agent_status(const struct cl_tunnel_opts *tun);

#endif
