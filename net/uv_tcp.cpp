#include "net/uv_tcp.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/sockets.hpp"

namespace dp::net {

struct UvTcpCallbacks {
    static UvTcpStream* stream(void* data) { return static_cast<UvTcpStream*>(data); }
    static void alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
        UvTcpStream* s = stream(h->data);
        *buf = uv_buf_init(reinterpret_cast<char*>(s->read_buf_), static_cast<unsigned>(s->read_size_));
    }
    static void read(uv_stream_t* st, ssize_t nread, const uv_buf_t* buf) {
        UvTcpStream* s = stream(st->data);
        if (nread == 0 || s->closing_) return;
        if (nread < 0) {
            s->reading_ = false;  // libuv stops reading at EOF and on errors
            s->owner->on_end(*s, nread == UV_EOF ? 0 : static_cast<int>(nread));
            return;
        }
        s->owner->on_data(*s, reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread));
    }
    static void written(uv_write_t* req, int status) {
        UvTcpStream* s = stream(req->data);
        s->owner->on_written(*s, status);
    }
    static void shut(uv_shutdown_t* req, int status) {
        UvTcpStream* s = stream(req->data);
        delete req;
        s->owner->on_shutdown(*s, status);
    }
    static void connected(uv_connect_t* req, int status) {
        UvTcpStream* s = stream(req->data);
        static_cast<ConnectOwner*>(s->owner)->on_connected(*s, status);
    }
    static void closed(uv_handle_t* h) {
        UvTcpStream* s = stream(h->data);
        s->owner->on_closed(*s);
    }
    static void readable(uv_poll_t* p, int status, int) {
        auto* l = static_cast<TcpListener*>(p->data);
        if (status == 0) l->on_readable();
    }
    static void unpause(uv_timer_t* t) {
        auto* l = static_cast<TcpListener*>(t->data);
        if (l->poll_) uv_poll_start(l->poll_, UV_READABLE, readable);
    }
    static void sweep(uv_timer_t* t) {
        auto* s = static_cast<TcpServer*>(t->data);
        s->engine_.tick();
        s->after_iteration_();
    }
    static void prepare(uv_prepare_t* p) { static_cast<TcpServer*>(p->data)->after_iteration_(); }
    static void check(uv_check_t* c) { static_cast<TcpServer*>(c->data)->after_iteration_(); }
};

UvTcpStream::UvTcpStream(uv_loop_t* loop, uint8_t* read_buf, size_t read_size, int fd)
    : read_buf_(read_buf), read_size_(read_size) {
    uv_tcp_init(loop, &handle_);
    handle_.data = this;
    if (fd >= 0 && uv_tcp_open(&handle_, fd) != 0) {
        ::close(fd);
        ok_ = false;
    }
    if (fd >= 0 && ok_) uv_tcp_nodelay(&handle_, 1);
}

UvTcpStream::~UvTcpStream() {
    delete write_req_;
    delete connect_req_;
}

int UvTcpStream::connect(const sockaddr* addr) {
    if (!connect_req_) connect_req_ = new uv_connect_t;
    connect_req_->data = this;
    const int r = uv_tcp_connect(connect_req_, &handle_, addr, UvTcpCallbacks::connected);
    if (r == 0) uv_tcp_nodelay(&handle_, 1);
    return r;
}

int UvTcpStream::try_write(const uint8_t* p, size_t n) {
    uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(const_cast<uint8_t*>(p)), static_cast<unsigned>(n));
    const int r = uv_try_write(reinterpret_cast<uv_stream_t*>(&handle_), &b, 1);
    return r == UV_EAGAIN ? 0 : r;
}

int UvTcpStream::write(const uint8_t* p, size_t n) {
    if (!write_req_) write_req_ = new uv_write_t;
    write_req_->data = this;
    uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(const_cast<uint8_t*>(p)), static_cast<unsigned>(n));
    return uv_write(write_req_, reinterpret_cast<uv_stream_t*>(&handle_), &b, 1, UvTcpCallbacks::written);
}

void UvTcpStream::read(bool on) {
    if (closing_ || on == reading_) return;
    auto* st = reinterpret_cast<uv_stream_t*>(&handle_);
    if (on) reading_ = uv_read_start(st, UvTcpCallbacks::alloc, UvTcpCallbacks::read) == 0;
    else {
        uv_read_stop(st);
        reading_ = false;
    }
}

int UvTcpStream::shutdown() {
    auto* req = new uv_shutdown_t;
    req->data = this;
    const int r = uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&handle_), UvTcpCallbacks::shut);
    if (r != 0) delete req;
    return r;
}

void UvTcpStream::abandon() {
    closing_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_), [](uv_handle_t* h) { delete static_cast<UvTcpStream*>(h->data); });
}

void UvTcpStream::close() {
    if (closing_) return;
    closing_ = true;
    reading_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_), UvTcpCallbacks::closed);
}

// ---------------------------------------------------------------------------------------------

namespace {
int open_reserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
constexpr int kAcceptsPerEvent = 64;  // then back to the loop, so one busy listener cannot starve the rest
constexpr uint64_t kFdPauseMs = 100;
}  // namespace

TcpListener::TcpListener(uv_loop_t* loop, TcpEngine& engine, uint8_t* read_buf, size_t read_size)
    : loop_(loop), engine_(engine), read_buf_(read_buf), read_size_(read_size) {}

TcpListener::~TcpListener() { close(); }

bool TcpListener::open(const std::string& host, uint16_t port, bool reuseport, int backlog, std::string& error) {
    fd_ = bind_socket(host, port, SOCK_STREAM, reuseport, error);
    if (fd_ < 0) return false;
    if (::listen(fd_, backlog) != 0) {
        error = "cannot listen on " + format_host_port(host, port) + "/tcp: " + std::strerror(errno);
        ::close(fd_);
        fd_ = -1;
        return false;
    }
    reserve_fd_ = open_reserve();
    poll_ = new uv_poll_t;
    uv_poll_init(loop_, poll_, fd_);
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, UvTcpCallbacks::readable);
    pause_ = new uv_timer_t;
    uv_timer_init(loop_, pause_);
    pause_->data = this;
    return true;
}

void TcpListener::close() {
    if (poll_) {
        uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
        poll_ = nullptr;
    }
    if (pause_) {
        uv_close(reinterpret_cast<uv_handle_t*>(pause_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
        pause_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
    fd_ = reserve_fd_ = -1;
}

void TcpListener::on_readable() {
    for (int i = 0; i < kAcceptsPerEvent && fd_ >= 0; ++i) {
        sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        const int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) on_fd_limit();
            return;
        }
        if (!engine_.admit()) {
            ::close(fd);  // a clean close: the client learns at once instead of waiting in the backlog
            engine_.refused(RefuseReason::FdBudget);
            continue;
        }
        auto* s = new UvTcpStream(loop_, read_buf_, read_size_, fd);
        if (!s->ok()) {  // uv_tcp_open failed (and closed fd): nothing was admitted
            s->abandon();
            engine_.refused(RefuseReason::FdLimit);
            continue;
        }
        engine_.add(s, peer_address(reinterpret_cast<const sockaddr*>(&peer)));
    }
}

void TcpListener::on_fd_limit() {
    engine_.refused(RefuseReason::FdLimit);
    // Closing connections give their descriptors back first; then the reserve one takes the
    // waiting connection off the queue with a clean close.
    engine_.shed(16);
    if (reserve_fd_ >= 0) {
        ::close(reserve_fd_);
        reserve_fd_ = -1;
        const int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) ::close(fd);
    }
    reserve_fd_ = open_reserve();
    if (reserve_fd_ < 0) {
        // Still short: stop accepting for a moment rather than spin on a readable listener.
        uv_poll_stop(poll_);
        uv_timer_start(pause_, UvTcpCallbacks::unpause, kFdPauseMs, 0);
    }
}

// ---------------------------------------------------------------------------------------------

uint64_t sweep_interval_ms(const TcpLimits& l) {
    const uint64_t shortest = std::min({l.idle_ms, l.message_ms, std::max<uint64_t>(l.close_grace_ms, 1)});
    return std::clamp<uint64_t>(shortest / 10, 50, 1000);
}

TcpServer::TcpServer(uv_loop_t* loop, TcpHandler& handler, TcpStats& stats, const TcpLimits& limits,
                     std::function<void()> after_iteration)
    : loop_(loop), read_buf_(kReadSize), engine_(handler, *this, stats, limits),
      after_iteration_(std::move(after_iteration)), sweeper_(new uv_timer_t), prepare_(new uv_prepare_t),
      check_(new uv_check_t) {
    if (!after_iteration_) after_iteration_ = [this] { engine_.flush(); };
    uv_timer_init(loop_, sweeper_);
    sweeper_->data = this;
    restart_timer();
    uv_prepare_init(loop_, prepare_);
    prepare_->data = this;
    uv_prepare_start(prepare_, UvTcpCallbacks::prepare);
    uv_check_init(loop_, check_);
    check_->data = this;
    uv_check_start(check_, UvTcpCallbacks::check);
    // The handles never keep the loop alive by themselves.
    uv_unref(reinterpret_cast<uv_handle_t*>(sweeper_));
    uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
    uv_unref(reinterpret_cast<uv_handle_t*>(check_));
}

TcpServer::~TcpServer() {
    uv_close(reinterpret_cast<uv_handle_t*>(sweeper_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    uv_close(reinterpret_cast<uv_handle_t*>(prepare_), [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
    uv_close(reinterpret_cast<uv_handle_t*>(check_), [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
}

void TcpServer::restart_timer() {
    const uint64_t every = sweep_interval_ms(engine_.limits());
    uv_timer_start(sweeper_, UvTcpCallbacks::sweep, every, every);
}

bool TcpServer::listen(const std::string& host, uint16_t port, bool reuseport, int backlog, std::string& error) {
    auto l = std::make_unique<TcpListener>(loop_, engine_, read_buf_.data(), read_buf_.size());
    if (!l->open(host, port, reuseport, backlog, error)) return false;
    listeners_.push_back(std::move(l));
    return true;
}

void TcpServer::reconfigure(const TcpLimits& limits) {
    engine_.reconfigure(limits);
    restart_timer();
}

void TcpServer::shutdown() {
    for (auto& l : listeners_) l->close();
    engine_.shutdown();
}

}  // namespace dp::net
