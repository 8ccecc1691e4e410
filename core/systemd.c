/* meshgated under systemd (packaging/systemd/meshgated.service,
 * Type=notify): READY=1 once every plugin has started, RELOADING=1 around
 * a SIGHUP, STOPPING=1, and the watchdog. Outside systemd every call is a
 * no-op: sd_notify does nothing without $NOTIFY_SOCKET. */
#include <systemd/sd-daemon.h>

#include "core.h"
#include "bus_client.h"

void core_sd_ready(size_t plugins)
{
	sd_notifyf(0, "READY=1\nSTATUS=%zu plugins running", plugins);
}

void core_sd_reloading(int done)
{
	sd_notify(0, done ? "READY=1" : "RELOADING=1");
}

void core_sd_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

unsigned core_sd_watchdog_ms(void)
{
	uint64_t usec = 0;
	return sd_watchdog_enabled(0, &usec) > 0 ? (unsigned)(usec / 1000) : 0;
}

/* The watchdog is fed only when the bus answers: a broker that no longer
 * routes gets the daemon restarted, not just a main thread that still
 * waits for signals. */
void core_sd_watchdog_feed(struct core *core, unsigned deadline_ms)
{
	struct mg_bus_client *bus = core_thread_client(core);
	json_t *reply = NULL;
	if (bus && !mg_bus_client_request(bus, "core.ping", NULL, (int)deadline_ms, &reply))
		sd_notify(0, "WATCHDOG=1");
	else
		core_log(MG_LOG_WARN, "core",
		         "the bus did not answer within %u ms: watchdog not fed", deadline_ms);
	json_decref(reply);
}
