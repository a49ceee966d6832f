#include "net/systemd_notify.hpp"

#include <systemd/sd-daemon.h>

namespace dp::net {

namespace {

// NOTIFY_SOCKET stays in the environment (unset_environment = 0): the process notifies
// again at every reload and at stop. sd_notify returns 0 when the variable is unset and a
// negative errno when the manager cannot be reached; neither stops the server.
void notify(const std::string& state) { (void)sd_notify(0, state.c_str()); }

}  // namespace

void notify_ready(const std::string& status) { notify("READY=1\nSTATUS=" + status); }
void notify_reloading() { notify("RELOADING=1\nSTATUS=reloading the configuration"); }
void notify_stopping() { notify("STOPPING=1\nSTATUS=stopping: draining"); }

}  // namespace dp::net
