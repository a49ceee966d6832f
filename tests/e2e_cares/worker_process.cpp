#include "worker_process.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace dptest {

int free_port() {
    for (int attempt = 0; attempt < 50; ++attempt) {
        int t = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        getsockname(t, reinterpret_cast<sockaddr*>(&a), &len);
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        const bool ok = bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        close(t);
        close(u);
        if (ok) return ntohs(a.sin_port);
    }
    throw std::runtime_error("no free port");
}

namespace {
bool udp_answers(int port) {
    // A minimal SOA query for "example.com"; any answer means the worker is up.
    const unsigned char q[] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l',
                               'e', 3, 'c', 'o', 'm', 0, 0, 6, 0, 1};
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    timeval tv{0, 100000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sendto(s, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    unsigned char buf[512];
    const bool ok = recv(s, buf, sizeof buf, 0) > 0;
    close(s);
    return ok;
}
}  // namespace

WorkerProcess::WorkerProcess(const std::string& binary, std::vector<std::string> args) {
    port_ = free_port();
    args.insert(args.begin(), {binary, "--host", "127.0.0.1", "--port", std::to_string(port_)});
    pid_ = fork();
    if (pid_ == 0) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(binary.c_str(), argv.data());
        _exit(127);
    }
    for (int i = 0; i < 100; ++i) {
        if (udp_answers(port_)) return;
        int status;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("worker exited during start-up");
        }
    }
    stop();
    throw std::runtime_error("worker did not answer within 10 s");
}

int WorkerProcess::stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
}

WorkerProcess::~WorkerProcess() { stop(); }

}  // namespace dptest
