// Starts the real domain-park-worker on a free loopback port for a test, stops it by PID.
#pragma once

#include <string>
#include <vector>

namespace dptest {

class WorkerProcess {
public:
    // `binary` is the worker; `args` are extra flags (host/port are added).
    WorkerProcess(const std::string& binary, std::vector<std::string> args);
    ~WorkerProcess();
    WorkerProcess(const WorkerProcess&) = delete;
    WorkerProcess& operator=(const WorkerProcess&) = delete;

    int port() const { return port_; }
    int pid() const { return pid_; }
    // SIGTERM, then waits (bounded); returns the exit status or -1.
    int stop();

private:
    int pid_ = -1;
    int port_ = 0;
};

// A port free for both UDP and TCP on 127.0.0.1.
int free_port();

}  // namespace dptest
