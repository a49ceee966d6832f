// The contract, end to end: the real worker process queried by c-ares over UDP and TCP,
// answers decoded with c-ares's own ares_parse_* functions.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <doctest/doctest.h>
#include <netdb.h>
#include <sys/select.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "check/cares_drive.hpp"
#include "worker_process.hpp"

namespace {

std::string worker_binary() {
    const char* env = std::getenv("DOMAIN_PARK_WORKER");
    return env ? env : DOMAIN_PARK_WORKER_PATH;
}

dptest::WorkerProcess& worker() {
    static dptest::WorkerProcess w(worker_binary(), {"-n", "ns1.park.example:192.0.2.53,2001:db8::53", "-n",
                                                    "ns2.park.example:192.0.2.54", "--rua", "agg@park.example",
                                                    "--ruf", "fail@park.example", "--identity", "cares-worker"});
    return w;
}

struct Reply {
    int status = -1;
    std::vector<unsigned char> buf;
    int rcode() const { return buf.size() >= 4 ? (buf[3] & 0x0F) : -1; }
    bool aa() const { return buf.size() >= 4 && (buf[2] & 0x04); }
    int ancount() const { return buf.size() >= 8 ? (buf[6] << 8 | buf[7]) : -1; }
    int nscount() const { return buf.size() >= 10 ? (buf[8] << 8 | buf[9]) : -1; }
};

// One query through a fresh c-ares channel; tcp selects ARES_FLAG_USEVC.
Reply ask(const std::string& name, int type, bool tcp, int klass = ns_c_in) {
    ares_channel ch;
    ares_options opts{};
    // NOCHECKRESP: hand REFUSED/NOTIMP answers to us instead of treating them as server failure.
    opts.flags = ARES_FLAG_NOCHECKRESP | ARES_FLAG_NORECURSE | (tcp ? ARES_FLAG_USEVC : 0);
    opts.timeout = 2000;
    opts.tries = 1;
    REQUIRE(ares_init_options(&ch, &opts, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) == ARES_SUCCESS);
    const std::string server = "127.0.0.1:" + std::to_string(worker().port());
    REQUIRE(ares_set_servers_ports_csv(ch, server.c_str()) == ARES_SUCCESS);
    unsigned char* q = nullptr;
    int qlen = 0;
    REQUIRE(ares_create_query(name.c_str(), klass, type, 0x4242, 0, &q, &qlen, 0) == ARES_SUCCESS);
    Reply r;
    ares_send(
        ch, q, qlen,
        [](void* arg, int status, int, unsigned char* abuf, int alen) {
            auto* rr = static_cast<Reply*>(arg);
            rr->status = status;
            if (abuf) rr->buf.assign(abuf, abuf + alen);
        },
        &r);
    ares_free_string(q);
    dp::check::cares_drive(ch, [&] { return r.status != -1; }, 5000);
    ares_destroy(ch);
    REQUIRE_MESSAGE(r.status == ARES_SUCCESS, "c-ares status ", ares_strerror(r.status), " for ", name);
    return r;
}

std::vector<std::string> txts(const Reply& r) {
    ares_txt_reply* t = nullptr;
    REQUIRE(ares_parse_txt_reply(r.buf.data(), static_cast<int>(r.buf.size()), &t) == ARES_SUCCESS);
    std::vector<std::string> out;
    for (auto* p = t; p; p = p->next) out.emplace_back(reinterpret_cast<char*>(p->txt), p->length);
    ares_free_data(t);
    return out;
}

}  // namespace

TEST_CASE("contract rows over UDP and TCP through c-ares") {
    for (bool tcp : {false, true}) {
        CAPTURE(tcp);
        SUBCASE("SOA at D") {
            Reply r = ask("a.b.Example.co.uk", ns_t_soa, tcp);
            CHECK(r.aa());
            CHECK(r.ancount() == 0);  // below D: NODATA
            r = ask("example.co.uk", ns_t_soa, tcp);
            ares_soa_reply* soa = nullptr;
            REQUIRE(ares_parse_soa_reply(r.buf.data(), static_cast<int>(r.buf.size()), &soa) == ARES_SUCCESS);
            CHECK(std::string(soa->nsname) == "ns1.park.example");
            CHECK(std::string(soa->hostmaster) == "hostmaster.park.example");
            CHECK(soa->minttl == 3600);
            ares_free_data(soa);
            CHECK(r.aa());
        }
        SUBCASE("NS at D with glue") {
            Reply r = ask("example.com", ns_t_ns, tcp);
            hostent* h = nullptr;
            REQUIRE(ares_parse_ns_reply(r.buf.data(), static_cast<int>(r.buf.size()), &h) == ARES_SUCCESS);
            std::vector<std::string> names;
            for (char** a = h->h_aliases; *a; ++a) names.emplace_back(*a);
            CHECK(names == std::vector<std::string>{"ns1.park.example", "ns2.park.example"});
            ares_free_hostent(h);
            CHECK((r.buf[10] << 8 | r.buf[11]) == 3);  // ARCOUNT: two A and one AAAA
        }
        SUBCASE("TXT: SPF, DMARC, DKIM") {
            CHECK(txts(ask("www.example.com", ns_t_txt, tcp)) == std::vector<std::string>{"v=spf1 -all"});
            CHECK(txts(ask("_dmarc.example.com", ns_t_txt, tcp)) ==
                  std::vector<std::string>{"v=DMARC1; p=reject; sp=reject; np=reject; adkim=s; aspf=s; rua=mailto:agg@park.example; ruf=mailto:fail@park.example;"});
            CHECK(txts(ask("google._domainkey.example.com", ns_t_txt, tcp)) ==
                  std::vector<std::string>{"v=DKIM1; p="});
        }
        SUBCASE("null MX") {
            Reply r = ask("example.com", ns_t_mx, tcp);
            ares_mx_reply* mx = nullptr;
            REQUIRE(ares_parse_mx_reply(r.buf.data(), static_cast<int>(r.buf.size()), &mx) == ARES_SUCCESS);
            REQUIRE(mx != nullptr);
            CHECK(mx->priority == 0);
            CHECK(std::string(mx->host).empty());
            CHECK(mx->next == nullptr);
            ares_free_data(mx);
        }
        SUBCASE("CAA forbids issuance") {
            Reply r = ask("example.com", 257, tcp);
            ares_caa_reply* caa = nullptr;
            REQUIRE(ares_parse_caa_reply(r.buf.data(), static_cast<int>(r.buf.size()), &caa) == ARES_SUCCESS);
            REQUIRE(caa != nullptr);
            CHECK(caa->critical == 0);
            CHECK(std::string(reinterpret_cast<char*>(caa->property)) == "issue");
            CHECK(std::string(reinterpret_cast<char*>(caa->value), caa->length) == ";");
            ares_free_data(caa);
        }
        SUBCASE("A/AAAA: NODATA with SOA; name-server hosts have their addresses") {
            Reply r = ask("example.com", ns_t_a, tcp);
            hostent* h = nullptr;
            CHECK(ares_parse_a_reply(r.buf.data(), static_cast<int>(r.buf.size()), &h, nullptr, nullptr) ==
                  ARES_ENODATA);
            CHECK(r.nscount() == 1);
            CHECK(r.rcode() == 0);
            r = ask("ns1.park.example", ns_t_a, tcp);
            ares_addrttl ttls[4];
            int n = 4;
            REQUIRE(ares_parse_a_reply(r.buf.data(), static_cast<int>(r.buf.size()), nullptr, ttls, &n) ==
                    ARES_SUCCESS);
            REQUIRE(n == 1);
            char text[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &ttls[0].ipaddr, text, sizeof text);
            CHECK(std::string(text) == "192.0.2.53");
            CHECK(ttls[0].ttl == 86400);
            r = ask("ns1.park.example", ns_t_aaaa, tcp);
            ares_addr6ttl t6[4];
            n = 4;
            REQUIRE(ares_parse_aaaa_reply(r.buf.data(), static_cast<int>(r.buf.size()), nullptr, t6, &n) ==
                    ARES_SUCCESS);
            REQUIRE(n == 1);
            char t6text[INET6_ADDRSTRLEN];
            inet_ntop(AF_INET6, &t6[0].ip6addr, t6text, sizeof t6text);
            CHECK(std::string(t6text) == "2001:db8::53");
        }
        SUBCASE("other types: NODATA; no registrable domain: REFUSED without AA") {
            for (int t : {43 /*DS*/, 48 /*DNSKEY*/, 65 /*HTTPS*/, 65400}) {
                Reply r = ask("x.example.com", t, tcp);
                CHECK(r.rcode() == 0);
                CHECK(r.aa());
                CHECK(r.ancount() == 0);
                CHECK(r.nscount() == 1);
            }
            for (const char* n : {"com", "co.uk"}) {
                Reply r = ask(n, ns_t_soa, tcp);
                CHECK(r.rcode() == 5);
                CHECK_FALSE(r.aa());
            }
            Reply r = ask("example.com", ns_t_axfr, tcp);
            CHECK(r.rcode() == 5);
        }
        SUBCASE("CHAOS identity and other classes") {
            Reply r = ask("id.server", ns_t_txt, tcp, ns_c_chaos);
            CHECK(txts(r) == std::vector<std::string>{"cares-worker"});
            r = ask("example.com", ns_t_txt, tcp, ns_c_hs);
            CHECK(r.rcode() == 5);
        }
    }
}
