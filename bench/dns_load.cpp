// dns_load: a bounded DNS load generator for the domain-park benchmarks.
//
// One thread, non-blocking sockets, epoll. UDP uses sendmmsg/recvmmsg batches over N
// connected sockets; TCP keeps C long-lived connections with up to W pipelined,
// length-prefixed queries in flight each (RFC 7766). A third mode, tcp-idle, opens C
// connections, makes one query on each and then holds them open, so a script can measure
// the server's memory per idle connection.
//
// --random-label puts a fresh label in front of every query's name (each query a name never
// asked before), so a cache in front of the server never hits: the cache-miss mix.
//
// Malformed queries of the mix (a third word, see mix_query.hpp) are sent like the others but
// do not count against the in-flight window, are matched to an answer by ID alone (a FORMERR
// need not carry the question) and, when a server drops them, are counted apart
// (bad_unanswered), not as lost: dropping them is a legitimate answer.
//
// Every run stops by itself: sending ends after -d seconds and/or -n queries, then the
// queries still in flight get at most -t seconds to come back.
//
// The last line of stdout is a one-line JSON summary for scripts.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "mix_query.hpp"

namespace {

using mixq::parse_type;

constexpr int kBatch = 64;                 // datagrams per sendmmsg/recvmmsg call
constexpr size_t kMaxQuery = 512;          // largest query we build (name <= 255 + fixed parts)
constexpr size_t kUdpRecvSize = 4096;      // larger than any EDNS answer we ask for
constexpr size_t kTcpReadBuf = 2 * 65538;  // always room for one maximal framed message
constexpr size_t kLabelLen = 10;           // --random-label: characters of the fresh label
constexpr size_t kLabelWire = kLabelLen + 1;

uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "dns_load: %s\n", msg.c_str());
    std::exit(2);
}

[[noreturn]] void die_errno(const std::string& what) {
    die(what + ": " + std::strerror(errno));
}

// ---------------------------------------------------------------- options

enum class Mode { Udp, Tcp, TcpIdle };

struct Options {
    std::string server = "127.0.0.1";
    uint16_t port = 53;
    Mode mode = Mode::Udp;
    std::string mix_file;
    double duration = 10.0;
    uint64_t max_queries = 0;  // 0 = bounded by duration only
    int conns = 1;
    int inflight = 100;
    double rate = 0.0;  // 0 = closed loop
    double timeout = 2.0;
    bool edns = true;
    uint16_t edns_size = 1232;
    uint32_t seed = 1;
    bool quiet = false;
    bool random_label = false;
    size_t wave = 256;  // tcp-idle: connections being opened at once (under the listen backlog)
};

void usage() {
    std::fputs(
        "usage: dns_load -f MIX [options]\n"
        "  -s ADDR     server address, IPv4 or IPv6 (default 127.0.0.1)\n"
        "  -p PORT     server port (default 53)\n"
        "  -m MODE     udp | tcp | tcp-idle (default udp)\n"
        "  -f FILE     query mix, one \"name type\" per line (cycled in order)\n"
        "  -d SECONDS  send for this long (default 10; 0 = until -n)\n"
        "  -n COUNT    send at most COUNT queries (default: no limit)\n"
        "  -c N        UDP sockets / TCP connections (default 1)\n"
        "  -w N        max queries in flight per socket/connection (default 100)\n"
        "  -r QPS      open loop at this total rate (default: closed loop)\n"
        "  -t SECONDS  per-query timeout, also the final drain limit (default 2)\n"
        "  -e 0|1      add an EDNS OPT record, udp size 1232 (default 1)\n"
        "  -S SEED     seed for query IDs and random labels (default 1)\n"
        "  -q          only print the JSON summary\n"
        "  --random-label  udp/tcp: prefix each query's name with a fresh 10-character label\n"
        "              (unique within a run; another -S gives other labels): no cache hits\n"
        "  --wave N    tcp-idle: connections opened at once (default 256); a server with a\n"
        "              short listen backlog needs fewer\n"
        "tcp-idle: opens -c connections, one query each, holds them -d seconds;\n"
        "  prints a line starting with READY once all are open.\n",
        stderr);
}

double parse_double(const char* s, const char* flag, double lo, double hi) {
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        die(std::string("bad value for ") + flag + ": " + s);
    }
    return v;
}

uint64_t parse_uint(const char* s, const char* flag, uint64_t lo, uint64_t hi) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < lo || v > hi) {
        die(std::string("bad value for ") + flag + ": " + s);
    }
    return v;
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            usage();
            std::exit(0);
        }
        if (a == "-q") {
            o.quiet = true;
            continue;
        }
        if (a == "--random-label") {
            o.random_label = true;
            continue;
        }
        if (i + 1 >= argc) die("missing value for " + std::string(a));
        const char* v = argv[++i];
        if (a == "-s") o.server = v;
        else if (a == "-p") o.port = static_cast<uint16_t>(parse_uint(v, "-p", 1, 65535));
        else if (a == "-m") {
            std::string_view m = v;
            if (m == "udp") o.mode = Mode::Udp;
            else if (m == "tcp") o.mode = Mode::Tcp;
            else if (m == "tcp-idle") o.mode = Mode::TcpIdle;
            else die("bad value for -m: " + std::string(m));
        } else if (a == "-f") o.mix_file = v;
        else if (a == "-d") o.duration = parse_double(v, "-d", 0, 86400);
        else if (a == "-n") o.max_queries = parse_uint(v, "-n", 0, UINT64_MAX);
        else if (a == "-c") o.conns = static_cast<int>(parse_uint(v, "-c", 1, 1000000));
        else if (a == "-w") o.inflight = static_cast<int>(parse_uint(v, "-w", 1, 16384));
        else if (a == "-r") o.rate = parse_double(v, "-r", 0, 1e9);
        else if (a == "-t") o.timeout = parse_double(v, "-t", 0.001, 3600);
        else if (a == "-e") o.edns = parse_uint(v, "-e", 0, 1) == 1;
        else if (a == "-S") o.seed = static_cast<uint32_t>(parse_uint(v, "-S", 0, UINT32_MAX));
        else if (a == "--wave") o.wave = parse_uint(v, "--wave", 1, 65536);
        else die("unknown flag " + std::string(a) + " (try -h)");
    }
    if (o.mix_file.empty()) die("-f MIX is required");
    if (o.duration == 0 && o.max_queries == 0 && o.mode != Mode::TcpIdle) {
        die("-d 0 needs -n COUNT, or the run would never end");
    }
    return o;
}

// ---------------------------------------------------------------- query mix

// All queries are built once, without ID, into one contiguous blob; sending copies a
// template and stamps the ID, so the send path does no formatting.
struct Mix {
    std::vector<uint8_t> blob;
    std::vector<uint32_t> offset;
    std::vector<uint16_t> length;
    std::vector<uint16_t> question_len;  // qname + qtype + qclass, to match answers
    std::vector<uint8_t> bad;            // 1: a malformed query (mixq::Malform)
    size_t bad_count = 0;
    size_t size() const { return offset.size(); }
    const uint8_t* query(size_t i) const { return blob.data() + offset[i]; }
};

Mix load_mix(const Options& o) {
    std::ifstream in(o.mix_file);
    if (!in) die("cannot open mix file " + o.mix_file);
    Mix mix;
    std::string line;
    size_t lineno = 0;
    mixq::MixLine ml;
    while (std::getline(in, line)) {
        ++lineno;
        const std::string where = o.mix_file + ":" + std::to_string(lineno) + ": ";
        const mixq::LineStatus ls = mixq::parse_line(line, ml);
        if (ls == mixq::LineStatus::Skip) continue;
        if (ls == mixq::LineStatus::Bad) die(where + "want NAME TYPE [!noquestion|!cut|!opt2]");
        uint16_t qtype = 0;
        if (!parse_type(ml.type, qtype)) die(where + "unknown type " + ml.type);
        std::vector<uint8_t> q;
        uint16_t qlen = 0;
        if (!mixq::build_query(ml.name, qtype, o.edns ? o.edns_size : 0, q, qlen, ml.malform)) {
            die(where + "bad name " + ml.name);
        }
        const bool bad = ml.malform != mixq::Malform::None;
        if (q.size() + (o.random_label ? kLabelWire : 0) > kMaxQuery ||
            (o.random_label && !bad && qlen - 4 + kLabelWire > 255)) {
            die(where + "query too long");
        }
        mix.offset.push_back(static_cast<uint32_t>(mix.blob.size()));
        mix.length.push_back(static_cast<uint16_t>(q.size()));
        mix.question_len.push_back(qlen);
        mix.bad.push_back(bad ? 1 : 0);
        mix.bad_count += bad;
        mix.blob.insert(mix.blob.end(), q.begin(), q.end());
    }
    if (mix.bad_count == mix.size()) die("mix file " + o.mix_file + " holds only malformed queries");
    if (mix.size() == 0) die("mix file " + o.mix_file + " holds no queries");
    return mix;
}

// --random-label: the label of query number `seq` of a run. seq -> seq * odd + offset is a
// bijection modulo 2^50, and so is the xorshift after it, so labels never repeat within a run
// (below 2^50 queries) yet look random; the offset comes from -S, so two runs with different
// seeds ask different names (an overlap needs their offsets within a run's length of each
// other: about run length / 2^50). 10 base-32 characters carry the 50 bits.
void random_label(uint64_t seq, uint64_t offset, uint8_t* out) {
    constexpr uint64_t kMask = (1ULL << 50) - 1;
    uint64_t x = (seq * 0x9E3779B97F4A7C15ULL + offset) & kMask;
    x ^= x >> 25;
    static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    for (size_t i = 0; i < kLabelLen; ++i) {
        out[i] = static_cast<uint8_t>(kAlphabet[x & 31]);
        x >>= 5;
    }
}

uint64_t label_offset(uint32_t seed) {
    // splitmix64 of the seed: nearby seeds give far-apart offsets.
    uint64_t z = static_cast<uint64_t>(seed) + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// ---------------------------------------------------------------- statistics

// Log-linear histogram of nanoseconds: 64 sub-buckets per power of two, so any reported
// percentile is within ~1.6% of the true value with fixed memory and O(1) insert.
class Histogram {
public:
    void add(uint64_t v) {
        ++counts_[index(v)];
        ++n_;
        sum_ += v;
        max_ = std::max(max_, v);
    }
    uint64_t count() const { return n_; }
    double mean() const { return n_ ? static_cast<double>(sum_) / static_cast<double>(n_) : 0.0; }
    uint64_t max() const { return max_; }
    uint64_t percentile(double p) const {
        if (n_ == 0) return 0;
        uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(n_)));
        rank = std::max<uint64_t>(rank, 1);
        uint64_t seen = 0;
        for (size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) return std::min(midpoint(i), max_);
        }
        return max_;
    }

private:
    static size_t index(uint64_t v) {
        if (v < 64) return static_cast<size_t>(v);
        int e = 63 - __builtin_clzll(v);  // e >= 6
        uint64_t m = (v >> (e - 6)) & 63;
        return static_cast<size_t>(e - 5) * 64 + static_cast<size_t>(m);
    }
    static uint64_t midpoint(size_t i) {
        if (i < 64) return i;
        int e = static_cast<int>(i / 64) + 5;
        uint64_t m = i % 64;
        uint64_t lo = (64 + m) << (e - 6);
        uint64_t width = 1ULL << (e - 6);
        return lo + width / 2;
    }
    std::array<uint64_t, 64 * 60> counts_{};
    uint64_t n_ = 0;
    uint64_t sum_ = 0;
    uint64_t max_ = 0;
};

struct Stats {
    uint64_t sent = 0;
    uint64_t answered = 0;
    uint64_t timeouts = 0;     // no answer within -t
    uint64_t conn_lost = 0;    // in flight on a TCP connection that closed
    uint64_t unexpected = 0;   // answer for an ID not in flight (late, duplicate)
    uint64_t mismatched = 0;   // ID in flight but the question differs
    uint64_t malformed = 0;    // too short, QR=0, or bad TCP framing
    uint64_t truncated = 0;
    uint64_t send_errors = 0;
    uint64_t reconnects = 0;
    uint64_t connect_errors = 0;
    uint64_t answer_bytes = 0;  // DNS message bytes of matched answers, framing excluded
    uint64_t bad_sent = 0;        // malformed queries of the mix (included in sent)
    uint64_t bad_answered = 0;    // ... answered (included in answered)
    uint64_t bad_unanswered = 0;  // ... not answered within -t (not lost: dropping is allowed)
    std::array<uint64_t, 16> rcodes{};
    Histogram latency;
};

const char* rcode_name(size_t r) {
    static const char* names[16] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
                                    "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
                                    "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14",
                                    "RCODE15"};
    return r < 16 ? names[r] : "?";
}

// ---------------------------------------------------------------- in-flight tracking

// Wire IDs come from a random permutation of 0..65535; slot i of a flow uses ID perm[i].
// So IDs look random to the server while the answer path maps ID -> slot in O(1).
struct IdMap {
    std::vector<uint16_t> perm, inverse;
    explicit IdMap(uint32_t seed) : perm(65536), inverse(65536) {
        for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<uint16_t>(i);
        std::mt19937 rng(seed);
        std::shuffle(perm.begin(), perm.end(), rng);
        for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<uint16_t>(i);
    }
};

struct Slot {
    uint64_t sent_ns = 0;
    uint64_t label_seq = 0;  // --random-label: which label this query carries
    uint32_t mix_index = 0;
    uint32_t use = 0;  // counts the slot's uses, so a stale entry of Flow::sent_order is known
    bool busy = false;
    bool bad = false;  // a malformed query
};

// An entry of Flow::sent_order: slot `slot` in its use number `use`.
struct SentRef {
    uint32_t slot, use;
};

// One UDP socket or TCP connection with its own ID space.
struct Flow {
    int fd = -1;
    std::vector<Slot> slots;
    std::vector<uint32_t> free_ring;  // FIFO of free slots: a timed-out ID is reused last
    size_t free_head = 0, free_count = 0;
    uint32_t inflight = 0;      // well-formed queries in flight: what the -w window counts
    uint32_t bad_inflight = 0;  // malformed ones
    // Slots in the order they were sent, so expiry looks only at the oldest; entries whose
    // query was answered since are dropped when they reach the front.
    std::deque<SentRef> sent_order;
    // TCP only
    bool connected = false;
    uint64_t reconnect_at = 0;
    std::vector<uint8_t> rbuf;
    size_t rlen = 0;
    std::vector<uint8_t> wbuf;
    size_t woff = 0, wlen = 0;

    void init(size_t cap) {
        slots.assign(cap, Slot{});
        free_ring.resize(cap);
        for (size_t i = 0; i < cap; ++i) free_ring[i] = static_cast<uint32_t>(i);
        free_head = 0;
        free_count = cap;
        inflight = bad_inflight = 0;
        sent_order.clear();
    }
    uint32_t take() {
        uint32_t s = free_ring[free_head];
        free_head = (free_head + 1) % free_ring.size();
        --free_count;
        return s;
    }
    void give(uint32_t s) {
        free_ring[(free_head + free_count) % free_ring.size()] = s;
        ++free_count;
    }
};

class Runner {
public:
    Runner(const Options& o, const Mix& mix)
        : o_(o), mix_(mix), ids_(o.seed), label_offset_(label_offset(o.seed)) {}

    int run();

private:
    void open_udp();
    void tcp_connect(Flow& f);
    void tcp_close(Flow& f, uint64_t now);
    void release(Flow& f, uint32_t slot);
    bool resolve();
    void send_udp(Flow& f, size_t n, uint64_t now);
    void send_tcp(Flow& f, size_t n, uint64_t now);
    void flush_tcp(Flow& f, uint64_t now);
    void recv_udp(Flow& f);
    void recv_tcp(Flow& f, uint64_t now);
    void on_answer(Flow& f, const uint8_t* msg, size_t len, uint64_t now);
    void expire(uint64_t now);
    uint32_t stamp(Flow& f, uint8_t* dst, uint64_t now);
    int run_idle();
    void report(uint64_t start, uint64_t send_end, uint64_t last_answer);

    const Options& o_;
    const Mix& mix_;
    IdMap ids_;
    Stats st_;
    std::vector<Flow> flows_;
    int ep_ = -1;
    sockaddr_storage addr_{};
    socklen_t addrlen_ = 0;
    size_t next_mix_ = 0;
    uint64_t total_inflight_ = 0;
    uint64_t last_answer_ns_ = 0;
    uint64_t label_offset_ = 0;
    uint64_t next_label_ = 0;  // never reused, also for queries the kernel did not take
    bool sending_ = true;
    // UDP batch scratch: one query buffer / receive buffer per batch entry.
    std::vector<uint8_t> sbuf_ = std::vector<uint8_t>(kBatch * kMaxQuery);
    std::vector<uint8_t> rbuf_ = std::vector<uint8_t>(kBatch * kUdpRecvSize);
};

bool Runner::resolve() {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(o_.port);
    if (getaddrinfo(o_.server.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return false;
    std::memcpy(&addr_, res->ai_addr, res->ai_addrlen);
    addrlen_ = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

void set_buffers(int fd) {
    // Loopback bursts of a whole batch per socket overflow the default buffers; we run as
    // root in the bench, so FORCE lifts the sysctl cap; otherwise fall back quietly.
    int sz = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0) {
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
}

size_t slot_capacity(int inflight, bool with_bad) {
    // Four times the window, so a freed ID is not handed out again while a late answer for
    // its previous use may still be on the way. Malformed queries are outside the window and
    // a server may drop them, each holding its ID for -t: then the whole ID space.
    if (with_bad) return 65536;
    size_t cap = 256;
    while (cap < static_cast<size_t>(inflight) * 4 && cap < 65536) cap *= 2;
    return cap;
}

void Runner::open_udp() {
    for (auto& f : flows_) {
        f.fd = socket(addr_.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (f.fd < 0) die_errno("socket");
        set_buffers(f.fd);
        // connect() lets the kernel drop datagrams from anyone but the server, and lets
        // sendmmsg go without per-message addresses.
        if (connect(f.fd, reinterpret_cast<sockaddr*>(&addr_), addrlen_) != 0) die_errno("connect");
    }
}

void Runner::tcp_connect(Flow& f) {
    f.fd = socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f.fd < 0) die_errno("socket");
    int one = 1;
    setsockopt(f.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(f.fd, reinterpret_cast<sockaddr*>(&addr_), addrlen_);
    if (r != 0 && errno != EINPROGRESS) {
        ++st_.connect_errors;
        close(f.fd);
        f.fd = -1;
        f.reconnect_at = now_ns() + 10'000'000;  // back off, so a dead server is no busy loop
        return;
    }
    f.connected = false;
    f.rlen = 0;
    f.woff = f.wlen = 0;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = static_cast<uint32_t>(&f - flows_.data());
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, f.fd, &ev) != 0) die_errno("epoll_ctl");
}

// Frees a busy slot: the query was answered, timed out or lost with its connection.
void Runner::release(Flow& f, uint32_t slot) {
    Slot& s = f.slots[slot];
    s.busy = false;
    f.give(slot);
    if (s.bad) {
        --f.bad_inflight;
    } else {
        --f.inflight;
        --total_inflight_;
    }
}

void Runner::tcp_close(Flow& f, uint64_t now) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, f.fd, nullptr);
    close(f.fd);
    f.fd = -1;
    f.connected = false;
    for (const SentRef& r : f.sent_order) {
        Slot& s = f.slots[r.slot];
        if (!s.busy || s.use != r.use) continue;
        if (s.bad) ++st_.bad_unanswered;
        else ++st_.conn_lost;
        release(f, r.slot);
    }
    f.sent_order.clear();
    f.reconnect_at = now + 10'000'000;
}

uint32_t Runner::stamp(Flow& f, uint8_t* dst, uint64_t now) {
    size_t mi = next_mix_;
    next_mix_ = (next_mix_ + 1) % mix_.size();
    uint32_t slot = f.take();
    uint16_t id = ids_.perm[slot];
    uint16_t len = mix_.length[mi];
    uint64_t label_seq = 0;
    const bool bad = mix_.bad[mi] != 0;
    if (o_.random_label && !bad) {
        // Header, then the fresh label, then the mix name and the rest unchanged.
        label_seq = next_label_++;
        std::memcpy(dst, mix_.query(mi), 12);
        dst[12] = static_cast<uint8_t>(kLabelLen);
        random_label(label_seq, label_offset_, dst + 13);
        std::memcpy(dst + 12 + kLabelWire, mix_.query(mi) + 12, len - 12u);
        len = static_cast<uint16_t>(len + kLabelWire);
    } else {
        std::memcpy(dst, mix_.query(mi), len);
    }
    dst[0] = static_cast<uint8_t>(id >> 8);
    dst[1] = static_cast<uint8_t>(id & 0xff);
    Slot& s = f.slots[slot];
    s = Slot{now, label_seq, static_cast<uint32_t>(mi), s.use + 1, true, bad};
    f.sent_order.push_back(SentRef{slot, s.use});
    if (bad) {
        ++f.bad_inflight;
        ++st_.bad_sent;
    } else {
        ++f.inflight;
        ++total_inflight_;
    }
    ++st_.sent;
    return len;
}

void Runner::send_udp(Flow& f, size_t n, uint64_t now) {
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    std::array<uint32_t, kBatch> slot_of{};
    for (size_t i = 0; i < n; ++i) {
        uint8_t* dst = sbuf_.data() + i * kMaxQuery;
        slot_of[i] = f.free_ring[f.free_head];  // stamp() takes exactly this slot
        uint32_t len = stamp(f, dst, now);
        iov[i] = iovec{dst, len};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(f.fd, msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
    size_t done = r > 0 ? static_cast<size_t>(r) : 0;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS &&
        errno != ECONNREFUSED) {
        ++st_.send_errors;
    }
    // Whatever the kernel did not take was never sent: undo it so it neither counts as
    // sent nor times out (its sent_order entries are the last ones).
    for (size_t i = done; i < n; ++i) {
        if (f.slots[slot_of[i]].bad) --st_.bad_sent;
        release(f, slot_of[i]);
        f.sent_order.pop_back();
        --st_.sent;
    }
    if (done < n) {
        // Keep the mix order identical to what was actually sent.
        next_mix_ = (next_mix_ + mix_.size() - (n - done) % mix_.size()) % mix_.size();
    }
}

void Runner::flush_tcp(Flow& f, uint64_t now) {
    while (f.woff < f.wlen) {
        ssize_t w = send(f.fd, f.wbuf.data() + f.woff, f.wlen - f.woff, MSG_NOSIGNAL);
        if (w > 0) {
            f.woff += static_cast<size_t>(w);
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (w < 0 && errno == EINTR) continue;
        ++st_.send_errors;
        tcp_close(f, now);
        return;
    }
    f.woff = f.wlen = 0;
}

void Runner::send_tcp(Flow& f, size_t n, uint64_t now) {
    // All n queries go out in one write: this is the pipelining the server must handle.
    size_t need = f.wlen + n * (kMaxQuery + 2);
    if (f.wbuf.size() < need) f.wbuf.resize(need);
    for (size_t i = 0; i < n; ++i) {
        uint8_t* dst = f.wbuf.data() + f.wlen;
        uint32_t len = stamp(f, dst + 2, now);
        dst[0] = static_cast<uint8_t>(len >> 8);
        dst[1] = static_cast<uint8_t>(len & 0xff);
        f.wlen += len + 2;
    }
    flush_tcp(f, now);
}

void Runner::on_answer(Flow& f, const uint8_t* msg, size_t len, uint64_t now) {
    if (len < 12 || (msg[2] & 0x80) == 0) {
        ++st_.malformed;
        return;
    }
    uint16_t id = static_cast<uint16_t>(msg[0] << 8 | msg[1]);
    uint32_t slot = ids_.inverse[id];
    if (slot >= f.slots.size() || !f.slots[slot].busy) {
        ++st_.unexpected;
        return;
    }
    Slot& s = f.slots[slot];
    size_t qlen = mix_.question_len[s.mix_index];
    const uint8_t* q = mix_.query(s.mix_index);
    uint16_t qdcount = static_cast<uint16_t>(msg[4] << 8 | msg[5]);
    // The server must echo the question byte for byte (0x20 case included); a malformed
    // query has none to echo.
    bool same;
    if (s.bad) {
        same = true;
        ++st_.bad_answered;
    } else if (o_.random_label) {
        uint8_t label[kLabelWire];
        label[0] = static_cast<uint8_t>(kLabelLen);
        random_label(s.label_seq, label_offset_, label + 1);
        same = qdcount == 1 && len >= 12 + kLabelWire + qlen && std::memcmp(msg + 12, label, kLabelWire) == 0 &&
               std::memcmp(msg + 12 + kLabelWire, q + 12, qlen) == 0;
    } else {
        same = qdcount == 1 && len >= 12 + qlen && std::memcmp(msg + 12, q + 12, qlen) == 0;
    }
    if (!same) ++st_.mismatched;
    ++st_.answered;
    ++st_.rcodes[msg[3] & 0x0f];
    if (msg[2] & 0x02) ++st_.truncated;
    st_.answer_bytes += len;
    st_.latency.add(now - s.sent_ns);
    release(f, slot);
    last_answer_ns_ = now;
}

void Runner::recv_udp(Flow& f) {
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    for (;;) {
        for (int i = 0; i < kBatch; ++i) {
            iov[i] = iovec{rbuf_.data() + static_cast<size_t>(i) * kUdpRecvSize, kUdpRecvSize};
            msgs[i].msg_hdr = msghdr{};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = recvmmsg(f.fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (r <= 0) return;  // EAGAIN, or ECONNREFUSED from an ICMP error: nothing to read
        uint64_t now = now_ns();
        for (int i = 0; i < r; ++i) {
            on_answer(f, static_cast<const uint8_t*>(iov[i].iov_base),
                      std::min<size_t>(msgs[i].msg_len, kUdpRecvSize), now);
        }
        if (r < kBatch) return;
    }
}

void Runner::recv_tcp(Flow& f, uint64_t now) {
    if (f.rbuf.size() < kTcpReadBuf) f.rbuf.resize(kTcpReadBuf);
    ssize_t r = recv(f.fd, f.rbuf.data() + f.rlen, f.rbuf.size() - f.rlen, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        if (sending_) ++st_.reconnects;
        tcp_close(f, now);
        return;
    }
    if (r < 0) return;
    f.rlen += static_cast<size_t>(r);
    now = now_ns();
    size_t off = 0;
    // Answers may be split anywhere, even inside the length prefix; keep the tail.
    while (f.rlen - off >= 2) {
        size_t mlen = static_cast<size_t>(f.rbuf[off] << 8 | f.rbuf[off + 1]);
        if (f.rlen - off - 2 < mlen) break;
        on_answer(f, f.rbuf.data() + off + 2, mlen, now);
        off += 2 + mlen;
    }
    if (off > 0) {
        std::memmove(f.rbuf.data(), f.rbuf.data() + off, f.rlen - off);
        f.rlen -= off;
    }
}

void Runner::expire(uint64_t now) {
    uint64_t limit = static_cast<uint64_t>(o_.timeout * 1e9);
    for (auto& f : flows_) {
        while (!f.sent_order.empty()) {
            const SentRef r = f.sent_order.front();
            Slot& s = f.slots[r.slot];
            if (s.busy && s.use == r.use) {
                if (now - s.sent_ns <= limit) break;  // the oldest in flight is still in time
                if (s.bad) ++st_.bad_unanswered;
                else ++st_.timeouts;
                release(f, r.slot);
            }
            f.sent_order.pop_front();
        }
    }
}

int Runner::run() {
    if (!resolve()) die("-s must be a numeric IPv4 or IPv6 address: " + o_.server);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) die_errno("epoll_create1");
    if (o_.mode == Mode::TcpIdle) return run_idle();

    flows_.resize(static_cast<size_t>(o_.conns));
    size_t cap = slot_capacity(o_.inflight, mix_.bad_count > 0);
    for (auto& f : flows_) f.init(cap);
    if (o_.mode == Mode::Udp) {
        open_udp();
        for (size_t i = 0; i < flows_.size(); ++i) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u32 = static_cast<uint32_t>(i);
            if (epoll_ctl(ep_, EPOLL_CTL_ADD, flows_[i].fd, &ev) != 0) die_errno("epoll_ctl");
        }
    } else {
        for (auto& f : flows_) tcp_connect(f);
    }

    const uint64_t start = now_ns();
    const uint64_t send_deadline =
        o_.duration > 0 ? start + static_cast<uint64_t>(o_.duration * 1e9) : UINT64_MAX;
    const uint64_t timeout_ns = static_cast<uint64_t>(o_.timeout * 1e9);
    uint64_t send_end = 0;
    uint64_t next_expire = start + 10'000'000;
    size_t rr = 0;
    std::vector<epoll_event> events(256);

    for (;;) {
        uint64_t now = now_ns();
        if (sending_ && (now >= send_deadline || (o_.max_queries && st_.sent >= o_.max_queries))) {
            sending_ = false;
            send_end = now;
        }
        if (!sending_ && (total_inflight_ == 0 || now - send_end > timeout_ns)) break;

        bool more_to_send = false;
        if (sending_) {
            uint64_t budget = UINT64_MAX;
            if (o_.rate > 0) {
                auto due = static_cast<uint64_t>(o_.rate * static_cast<double>(now - start) / 1e9);
                budget = due > st_.sent ? due - st_.sent : 0;
            }
            if (o_.max_queries) budget = std::min(budget, o_.max_queries - st_.sent);
            // Round robin start, so no socket is favoured when the budget is short.
            for (size_t k = 0; k < flows_.size() && budget > 0; ++k) {
                Flow& f = flows_[(rr + k) % flows_.size()];
                if (o_.mode == Mode::Tcp) {
                    if (f.fd < 0) {
                        if (now >= f.reconnect_at) tcp_connect(f);
                        continue;
                    }
                    if (!f.connected) continue;
                    if (f.wlen > 0) {
                        flush_tcp(f, now);
                        if (f.wlen > 0) continue;  // the server is not reading: wait
                    }
                }
                size_t room = static_cast<size_t>(o_.inflight) - std::min<size_t>(f.inflight, o_.inflight);
                room = std::min<size_t>(room, f.free_count);
                size_t n = std::min<uint64_t>({room, budget, static_cast<uint64_t>(kBatch)});
                if (n == 0) continue;
                uint64_t before = st_.sent;
                if (o_.mode == Mode::Udp) send_udp(f, n, now);
                else send_tcp(f, n, now);
                budget -= st_.sent - before;
                if (st_.sent - before == n && room > n && o_.rate == 0) more_to_send = true;
            }
            rr = (rr + 1) % flows_.size();
        }

        // Closed loop: an answer is what frees room, so wait for one (at most 1 ms, for the
        // timeout scan). Open loop: wake when the next query is due, so the rate is paced
        // smoothly instead of in 1 ms bursts.
        uint64_t wait_ns = more_to_send ? 0 : 1'000'000;
        if (sending_ && o_.rate > 0 && !more_to_send) {
            auto due = start + static_cast<uint64_t>(static_cast<double>(st_.sent + 1) * 1e9 / o_.rate);
            uint64_t t = now_ns();
            wait_ns = due > t ? std::min<uint64_t>(due - t, 1'000'000) : 0;
        }
        timespec wait_ts{0, static_cast<long>(wait_ns)};
        int n = epoll_pwait2(ep_, events.data(), static_cast<int>(events.size()), &wait_ts, nullptr);
        if (n < 0 && errno != EINTR) die_errno("epoll_wait");
        for (int i = 0; i < n; ++i) {
            Flow& f = flows_[events[i].data.u32];
            if (o_.mode == Mode::Udp) {
                recv_udp(f);
                continue;
            }
            if (f.fd < 0) continue;
            if (!f.connected && (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(f.fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    ++st_.connect_errors;
                    tcp_close(f, now_ns());
                    continue;
                }
                f.connected = true;
                // From now on only readability matters; pending writes are retried by the loop.
                epoll_event ev{};
                ev.events = EPOLLIN;
                ev.data.u32 = events[i].data.u32;
                epoll_ctl(ep_, EPOLL_CTL_MOD, f.fd, &ev);
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) recv_tcp(f, now_ns());
        }
        now = now_ns();
        if (now >= next_expire) {
            expire(now);
            next_expire = now + 10'000'000;
        }
    }
    if (send_end == 0) send_end = now_ns();
    // Anything still in flight after the drain is lost.
    expire(UINT64_MAX / 2 + now_ns());
    report(start, send_end, last_answer_ns_);
    for (auto& f : flows_) {
        if (f.fd >= 0) close(f.fd);
    }
    return 0;
}

// ---------------------------------------------------------------- idle connections

int Runner::run_idle() {
    enum class St : uint8_t { Pending, Connecting, Waiting, Idle, Failed, Closed };
    struct Conn {
        int fd = -1;
        St st = St::Pending;
    };
    std::vector<Conn> conns(static_cast<size_t>(o_.conns));
    size_t next = 0, connecting = 0, idle = 0, failed = 0, closed_in_hold = 0;
    std::vector<epoll_event> events(256);
    uint8_t query[kMaxQuery + 2];
    size_t first = 0;  // the first well-formed query of the mix: one the server answers
    while (mix_.bad[first]) ++first;
    uint32_t qlen = mix_.length[first];
    std::memcpy(query + 2, mix_.query(first), qlen);
    query[0] = static_cast<uint8_t>(qlen >> 8);
    query[1] = static_cast<uint8_t>(qlen & 0xff);
    uint8_t rbuf[4096];

    const uint64_t start = now_ns();
    const uint64_t setup_limit = start + static_cast<uint64_t>(std::max(o_.timeout, 1.0) * 1e9) +
                                 static_cast<uint64_t>(conns.size()) * 1'000'000ULL;
    auto fail = [&](Conn& c) {
        epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
        c.st = St::Failed;
        ++failed;
    };

    // Phase 1: open in waves so the listen backlog never overflows, one query each, so
    // the server has really accepted and served every connection before we measure.
    while (idle + failed < conns.size() && now_ns() < setup_limit) {
        while (next < conns.size() && connecting < o_.wave) {
            Conn& c = conns[next];
            c.fd = socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c.fd < 0) die_errno("socket (raise ulimit -n?)");
            int r = connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), addrlen_);
            if (r != 0 && errno != EINPROGRESS) {
                close(c.fd);
                c.fd = -1;
                c.st = St::Failed;
                ++failed;
                ++next;
                continue;
            }
            epoll_event ev{};
            ev.events = EPOLLOUT | EPOLLIN;
            ev.data.u32 = static_cast<uint32_t>(next);
            if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) die_errno("epoll_ctl");
            c.st = St::Connecting;
            ++connecting;
            ++next;
        }
        int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 10);
        for (int i = 0; i < n; ++i) {
            Conn& c = conns[events[i].data.u32];
            if (c.st == St::Connecting) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0 || (events[i].events & (EPOLLERR | EPOLLHUP))) {
                    fail(c);
                    --connecting;
                    continue;
                }
                if (!(events[i].events & EPOLLOUT)) continue;
                // A query this small always fits an empty socket buffer.
                if (send(c.fd, query, qlen + 2, MSG_NOSIGNAL) != static_cast<ssize_t>(qlen + 2)) {
                    fail(c);
                    --connecting;
                    continue;
                }
                epoll_event ev{};
                ev.events = EPOLLIN;
                ev.data.u32 = events[i].data.u32;
                epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
                c.st = St::Waiting;
            } else if (c.st == St::Waiting) {
                ssize_t r = recv(c.fd, rbuf, sizeof rbuf, 0);
                if (r <= 0) {
                    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                    fail(c);
                    --connecting;
                    continue;
                }
                // One short answer: we only need to know the server served us.
                c.st = St::Idle;
                ++idle;
                --connecting;
            }
        }
    }
    // Whatever is not idle by now is given up, so the hold phase watches only idle ones.
    for (auto& c : conns) {
        if (c.fd >= 0 && c.st != St::Idle) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            c.fd = -1;
            c.st = St::Failed;
        }
    }
    uint64_t ready = now_ns();
    char line[256];
    std::snprintf(line, sizeof line,
                  "READY {\"opened\":%zu,\"failed\":%zu,\"setup_s\":%.3f}\n", idle,
                  conns.size() - idle, static_cast<double>(ready - start) / 1e9);
    std::fputs(line, stdout);
    std::fflush(stdout);

    // Phase 2: hold. Only watch for the server closing connections (idle timeout, cap).
    const uint64_t hold_end = ready + static_cast<uint64_t>(o_.duration * 1e9);
    while (now_ns() < hold_end) {
        int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 100);
        for (int i = 0; i < n; ++i) {
            Conn& c = conns[events[i].data.u32];
            if (c.fd < 0) continue;
            ssize_t r = recv(c.fd, rbuf, sizeof rbuf, 0);
            if (r > 0 || (r < 0 && errno == EAGAIN)) continue;
            epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            c.fd = -1;
            if (c.st == St::Idle) ++closed_in_hold;
            c.st = St::Closed;
        }
    }
    for (auto& c : conns) {
        if (c.fd >= 0) close(c.fd);
    }
    std::printf("{\"mode\":\"tcp-idle\",\"server\":\"%s\",\"port\":%u,\"connections\":%zu,"
                "\"opened\":%zu,\"failed\":%zu,\"closed_by_server\":%zu,\"hold_s\":%.3f}\n",
                o_.server.c_str(), o_.port, conns.size(), idle, conns.size() - idle,
                closed_in_hold, o_.duration);
    return 0;
}

// ---------------------------------------------------------------- report

void Runner::report(uint64_t start, uint64_t send_end, uint64_t last_answer) {
    double send_s = static_cast<double>(send_end - start) / 1e9;
    // Answers that come back during the drain belong to the run; count them over the span
    // up to the last answer, not the full drain timeout.
    uint64_t end = std::max(send_end, last_answer);
    double span_s = static_cast<double>(end - start) / 1e9;
    double qps = span_s > 0 ? static_cast<double>(st_.answered) / span_s : 0;
    double send_qps = send_s > 0 ? static_cast<double>(st_.sent) / send_s : 0;
    uint64_t lost = st_.timeouts + st_.conn_lost;
    // Lets a reader check that two servers compared here send answers of similar size.
    // The generator's own CPU time: near one full core means it, not the server, was the limit.
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    double avg_answer = st_.answered ? static_cast<double>(st_.answer_bytes) / static_cast<double>(st_.answered) : 0;
    const Histogram& h = st_.latency;
    auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
    const char* mode = o_.mode == Mode::Udp ? "udp" : "tcp";

    if (!o_.quiet) {
        std::printf("mode %s  server %s:%u  %s  %d %s x %d in flight%s%s\n", mode, o_.server.c_str(),
                    o_.port, o_.rate > 0 ? "open loop" : "closed loop", o_.conns,
                    o_.mode == Mode::Udp ? "sockets" : "connections", o_.inflight,
                    o_.edns ? "  EDNS 1232" : "", o_.random_label ? "  random labels" : "");
        if (o_.rate > 0) std::printf("target rate     %.0f q/s\n", o_.rate);
        std::printf("sent            %" PRIu64 " in %.3f s (%.0f q/s)\n", st_.sent, send_s, send_qps);
        std::printf("answered        %" PRIu64 " (%.0f q/s), %.1f bytes per answer\n", st_.answered, qps,
                    avg_answer);
        std::printf("lost            %" PRIu64 " (timeouts %" PRIu64 ", on closed connections %" PRIu64 ")\n",
                    lost, st_.timeouts, st_.conn_lost);
        std::printf("unexpected      %" PRIu64 "  mismatched %" PRIu64 "  malformed %" PRIu64
                    "  truncated %" PRIu64 "  send errors %" PRIu64 "  reconnects %" PRIu64
                    "  connect errors %" PRIu64 "\n",
                    st_.unexpected, st_.mismatched, st_.malformed, st_.truncated, st_.send_errors,
                    st_.reconnects, st_.connect_errors);
        if (st_.bad_sent) {
            std::printf("malformed       %" PRIu64 " sent, %" PRIu64 " answered, %" PRIu64 " not answered\n",
                        st_.bad_sent, st_.bad_answered, st_.bad_unanswered);
        }
        std::printf("generator cpu   %.2f s (%.0f%% of one core over the run)\n", cpu_s,
                    span_s > 0 ? 100.0 * cpu_s / span_s : 0.0);
        std::printf("latency us      p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
                    us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)),
                    us(h.percentile(99.9)), us(h.max()), h.mean() / 1000.0);
        std::printf("rcodes         ");
        for (size_t r = 0; r < st_.rcodes.size(); ++r) {
            if (st_.rcodes[r]) std::printf(" %s %" PRIu64, rcode_name(r), st_.rcodes[r]);
        }
        std::printf("\n");
    }
    std::printf("{\"mode\":\"%s\",\"server\":\"%s\",\"port\":%u,\"connections\":%d,\"inflight\":%d,"
                "\"target_rate\":%.0f,\"edns\":%s,\"random_label\":%s,\"duration_s\":%.3f,\"span_s\":%.3f,\"sent\":%" PRIu64
                ",\"answered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"timeouts\":%" PRIu64
                ",\"conn_lost\":%" PRIu64 ",\"unexpected\":%" PRIu64 ",\"mismatched\":%" PRIu64
                ",\"malformed\":%" PRIu64 ",\"truncated\":%" PRIu64 ",\"send_errors\":%" PRIu64
                ",\"reconnects\":%" PRIu64 ",\"connect_errors\":%" PRIu64 ",\"bad_sent\":%" PRIu64
                ",\"bad_answered\":%" PRIu64 ",\"bad_unanswered\":%" PRIu64 ",\"qps\":%.1f,\"send_qps\":%.1f,\"avg_answer_bytes\":%.1f,\"cpu_s\":%.3f,"
                "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
                "\"rcodes\":{",
                mode, o_.server.c_str(), o_.port, o_.conns, o_.inflight, o_.rate,
                o_.edns ? "true" : "false", o_.random_label ? "true" : "false", send_s, span_s, st_.sent, st_.answered, lost, st_.timeouts,
                st_.conn_lost, st_.unexpected, st_.mismatched, st_.malformed, st_.truncated,
                st_.send_errors, st_.reconnects, st_.connect_errors, st_.bad_sent, st_.bad_answered,
                st_.bad_unanswered, qps, send_qps, avg_answer, cpu_s, us(h.percentile(50)),
                us(h.percentile(90)), us(h.percentile(99)), us(h.percentile(99.9)), us(h.max()),
                h.mean() / 1000.0);
    bool first = true;
    for (size_t r = 0; r < st_.rcodes.size(); ++r) {
        if (!st_.rcodes[r]) continue;
        std::printf("%s\"%s\":%" PRIu64, first ? "" : ",", rcode_name(r), st_.rcodes[r]);
        first = false;
    }
    std::printf("}}\n");
    std::fflush(stdout);
}

void raise_fd_limit() {
    // tcp-idle opens one descriptor per connection; lift the soft limit to the hard one.
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    raise_fd_limit();
    if (o.mode == Mode::TcpIdle) {
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < static_cast<rlim_t>(o.conns) + 16) {
            die("-c " + std::to_string(o.conns) + " needs more descriptors than ulimit -n allows (" +
                std::to_string(rl.rlim_cur) + ")");
        }
    }
    Mix mix = load_mix(o);
    Runner runner(o, mix);
    return runner.run();
}
