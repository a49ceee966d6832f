#include "check/check.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>

#include "check/cares_drive.hpp"
#include "dns/message.hpp"  // next_record: the record walker (inline)
#include "dns/wire.hpp"

namespace dp::check {

namespace {

// A name inside `msg` at `p` (compressed or not) in lower-case presentation form.
bool expand(const std::vector<uint8_t>& msg, size_t at, std::string& out) {
    char* s = nullptr;
    long enclen = 0;
    if (at >= msg.size() || ares_expand_name(msg.data() + at, msg.data(), static_cast<int>(msg.size()), &s, &enclen) !=
                                ARES_SUCCESS)
        return false;
    std::string name(s);
    ares_free_string(s);
    out = lower_name(std::move(name));
    if (out.empty()) out.assign(1, '.');
    return true;
}

std::string quoted(const unsigned char* p, size_t n) {
    std::string s = "\"";
    for (size_t i = 0; i < n; ++i) {
        const unsigned char c = p[i];
        if (c == '"' || c == '\\') s += '\\';
        if (c < 0x20 || c >= 0x7F) {
            char b[5];
            std::snprintf(b, sizeof b, "\\%03u", c);
            s += b;
        } else {
            s += static_cast<char>(c);
        }
    }
    return s + "\"";
}

std::string dotted(const char* name) {
    const std::string n = name ? lower_name(name) : "";
    return n.empty() ? "." : n;
}

}  // namespace

std::string lower_name(std::string s) {
    for (char& c : s) c = static_cast<char>(dns::ascii_lower(static_cast<uint8_t>(c)));
    while (s.size() > 1 && s.back() == '.') s.pop_back();
    return s;
}

std::string server_entry(const std::string& addr, uint16_t port) {
    in6_addr a6;
    in_addr a4;
    if (inet_pton(AF_INET, addr.c_str(), &a4) == 1) return addr + ":" + std::to_string(port);
    if (inet_pton(AF_INET6, addr.c_str(), &a6) == 1) return "[" + addr + "]:" + std::to_string(port);
    return {};
}

Exchange exchange(const std::string& servers_csv, const std::string& name, int type, bool tcp, bool rd, int timeout_ms) {
    Exchange r;
    ares_channel ch;
    ares_options opts{};
    // NOCHECKRESP: REFUSED and SERVFAIL are answers to report, not reasons to try elsewhere.
    // IGNTC: a truncated UDP answer is what this transport gave; TCP is checked on its own.
    opts.flags = ARES_FLAG_NOCHECKRESP | ARES_FLAG_IGNTC | ARES_FLAG_NOSEARCH | (tcp ? ARES_FLAG_USEVC : 0);
    opts.timeout = timeout_ms;
    opts.tries = 2;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    if (ares_init_options(&ch, &opts, mask) != ARES_SUCCESS) {
        r.error = "c-ares initialisation failed";
        return r;
    }
    if (!servers_csv.empty() && ares_set_servers_ports_csv(ch, servers_csv.c_str()) != ARES_SUCCESS) {
        ares_destroy(ch);
        r.error = "bad server address " + servers_csv;
        return r;
    }
    unsigned char* q = nullptr;
    int qlen = 0;
    if (ares_create_query(name.c_str(), ns_c_in, type, 0, rd ? 1 : 0, &q, &qlen, 1232) != ARES_SUCCESS) {
        ares_destroy(ch);
        r.error = "cannot build a query for '" + name + "'";
        return r;
    }
    int status = -1;
    struct Done {
        Exchange* r;
        int* status;
    } done{&r, &status};
    ares_send(
        ch, q, qlen,
        [](void* arg, int st, int, unsigned char* abuf, int alen) {
            auto* d = static_cast<Done*>(arg);
            *d->status = st;
            if (abuf && alen > 0) d->r->msg.assign(abuf, abuf + alen);
        },
        &done);
    ares_free_string(q);
    // Bounded: c-ares gives up after its tries and timeouts; this only drives it.
    cares_drive(ch, [&] { return status != -1; }, timeout_ms * 3 + 1000);
    ares_destroy(ch);  // runs the callback with ARES_EDESTRUCTION if still pending
    if (status == ARES_SUCCESS && !r.msg.empty()) {
        r.status = Exchange::Ok;
    } else if (status == ARES_ETIMEOUT || status == ARES_ECONNREFUSED || status == ARES_EDESTRUCTION ||
               status == -1) {
        r.status = Exchange::NoAnswer;
        r.error = status == ARES_ECONNREFUSED ? "connection refused" : "no answer";
    } else {
        r.status = Exchange::Error;
        r.error = ares_strerror(status);
    }
    return r;
}

std::vector<std::string> render(const std::vector<uint8_t>& m, int type) {
    std::vector<std::string> out;
    const unsigned char* a = m.data();
    const int n = static_cast<int>(m.size());
    switch (type) {
        case ns_t_txt: {
            ares_txt_ext* t = nullptr;
            if (ares_parse_txt_reply_ext(a, n, &t) != ARES_SUCCESS) break;
            std::string cur;
            bool open = false;
            for (ares_txt_ext* x = t; x; x = x->next) {
                if (x->record_start && open) {
                    out.push_back(cur);
                    cur.clear();
                }
                cur += std::string(reinterpret_cast<const char*>(x->txt), x->length);
                open = true;
            }
            if (open) out.push_back(cur);
            ares_free_data(t);
            for (auto& s : out) s = quoted(reinterpret_cast<const unsigned char*>(s.data()), s.size());
            break;
        }
        case ns_t_mx: {
            ares_mx_reply* mx = nullptr;
            if (ares_parse_mx_reply(a, n, &mx) != ARES_SUCCESS) break;
            for (ares_mx_reply* x = mx; x; x = x->next) out.push_back(std::to_string(x->priority) + " " + dotted(x->host));
            ares_free_data(mx);
            break;
        }
        case 257: {  // CAA
            ares_caa_reply* caa = nullptr;
            if (ares_parse_caa_reply(a, n, &caa) != ARES_SUCCESS) break;
            for (ares_caa_reply* x = caa; x; x = x->next)
                out.push_back(std::to_string(x->critical) + " " +
                              std::string(reinterpret_cast<const char*>(x->property), x->plength) + " " +
                              quoted(x->value, x->length));
            ares_free_data(caa);
            break;
        }
        case ns_t_ns: {
            hostent* h = nullptr;
            if (ares_parse_ns_reply(a, n, &h) != ARES_SUCCESS) break;
            for (char** p = h->h_aliases; p && *p; ++p) out.push_back(dotted(*p));
            ares_free_hostent(h);
            break;
        }
        case ns_t_soa: {
            ares_soa_reply* s = nullptr;
            if (ares_parse_soa_reply(a, n, &s) != ARES_SUCCESS) break;
            out.push_back(dotted(s->nsname) + " " + dotted(s->hostmaster) + " " + std::to_string(s->serial) + " " +
                          std::to_string(s->refresh) + " " + std::to_string(s->retry) + " " +
                          std::to_string(s->expire) + " " + std::to_string(s->minttl));
            ares_free_data(s);
            break;
        }
        case ns_t_a:
        case ns_t_aaaa: {
            hostent* h = nullptr;
            const int r = type == ns_t_a ? ares_parse_a_reply(a, n, &h, nullptr, nullptr)
                                         : ares_parse_aaaa_reply(a, n, &h, nullptr, nullptr);
            if (r != ARES_SUCCESS) break;
            for (char** p = h->h_addr_list; p && *p; ++p) {
                char buf[INET6_ADDRSTRLEN];
                if (inet_ntop(h->h_addrtype, *p, buf, sizeof buf)) out.push_back(buf);
            }
            ares_free_hostent(h);
            break;
        }
        default: break;
    }
    std::sort(out.begin(), out.end());
    return out;
}

Delegation delegation(const std::vector<uint8_t>& m, const std::string& zone) {
    Delegation d;
    const std::string want = lower_name(zone);
    if (m.size() < dns::kHeaderSize) return d;
    size_t off = dns::kHeaderSize;
    for (uint16_t i = 0, qd = dns::get_u16(m.data() + 4); i < qd; ++i) {
        if (!dns::skip_name(m.data(), m.size(), off) || off + 4 > m.size()) return d;
        off += 4;
    }
    const unsigned an = dns::get_u16(m.data() + 6), ns = dns::get_u16(m.data() + 8),
                   ar = dns::get_u16(m.data() + 10);
    std::vector<std::pair<std::string, std::string>> addresses;
    for (unsigned i = 0; i < an + ns + ar; ++i) {
        dns::RecordHead r;
        if (!dns::next_record(m.data(), m.size(), off, r)) return Delegation{};
        std::string owner;
        if (!expand(m, r.owner, owner)) return Delegation{};
        const bool additional = i >= an + ns;
        if (r.type == ns_t_ns && !additional && owner == want) {
            std::string target;
            if (expand(m, r.rdata, target)) d.ns.push_back(target);
        } else if (r.type == ns_t_soa && i >= an && !additional) {
            d.soa = true;
        } else if (additional && (r.type == ns_t_a || r.type == ns_t_aaaa)) {
            const size_t len = off - r.rdata;
            char buf[INET6_ADDRSTRLEN];
            if ((r.type == ns_t_a && len == 4) || (r.type == ns_t_aaaa && len == 16))
                if (inet_ntop(r.type == ns_t_a ? AF_INET : AF_INET6, m.data() + r.rdata, buf, sizeof buf))
                    addresses.emplace_back(owner, buf);
        }
    }
    std::sort(d.ns.begin(), d.ns.end());
    d.ns.erase(std::unique(d.ns.begin(), d.ns.end()), d.ns.end());
    for (const auto& [name, addr] : addresses)
        if (std::find(d.ns.begin(), d.ns.end(), name) != d.ns.end()) d.glue.emplace_back(name, addr);
    return d;
}

}  // namespace dp::check
