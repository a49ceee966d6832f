// Drives a c-ares channel until `done` says the answer is in, c-ares has nothing left to wait
// for, or `max_ms` pass: the select loop every synchronous c-ares user here needs (the check
// tool, the c-ares end-to-end test). Header-only so a test can use it without linking the tool.
#pragma once

#include <ares.h>
#include <sys/select.h>

#include <chrono>

namespace dp::check {

template <class Done>
void cares_drive(ares_channel ch, Done done, int max_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        fd_set rf, wf;
        FD_ZERO(&rf);
        FD_ZERO(&wf);
        const int n = ares_fds(ch, &rf, &wf);
        if (n == 0) break;
        timeval tv{0, 50000};
        select(n, &rf, &wf, nullptr, &tv);
        ares_process(ch, &rf, &wf);
    }
}

}  // namespace dp::check
