// Service-manager notifications (sd_notify(3), systemd's Type=notify): the worker and the
// balancer say when they are answering, reloading and stopping, so `systemctl start` returns
// once the sockets are bound and `systemctl status` shows what the process is doing.
// Each call is a no-op when the process was not started by systemd (NOTIFY_SOCKET unset).
#pragma once

#include <string>

namespace dp::net {

// READY=1 with STATUS=<status>: every socket is bound and the loop is about to run; also the
// end of a reload.
void notify_ready(const std::string& status);
// RELOADING=1: a SIGHUP reload has begun (notify_ready ends it).
void notify_reloading();
// A SIGHUP handler's body: RELOADING=1, reload(), then READY=1 with `status` (a failed reload
// keeps the running configuration, so the service is ready again either way).
template <class Reload>
void notify_around_reload(const std::string& status, Reload&& reload) {
    notify_reloading();
    reload();
    notify_ready(status);
}
// STOPPING=1: SIGTERM/SIGINT, draining before exit.
void notify_stopping();

}  // namespace dp::net
