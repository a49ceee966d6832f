// domain-park-check: is a domain parked right? The pieces main() puts together, apart so the
// DNS exchange and the record rendering can be read (and tested) on their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dp::check {

// One DNS exchange through c-ares: a query for (name, type), EDNS with 1232 octets, RD as
// asked, to `server` (an IPv4 or IPv6 address) on `port`, over UDP (a TC=1 answer is returned
// as it is) or TCP. `servers` empty: the system's resolvers (/etc/resolv.conf).
struct Exchange {
    enum Status { Ok, NoAnswer, Error } status = Error;
    std::string error;          // c-ares's words when status != Ok
    std::vector<uint8_t> msg;   // the answer, when Ok
    int rcode() const { return msg.size() >= 4 ? (msg[3] & 0x0F) : -1; }
    bool aa() const { return msg.size() >= 3 && (msg[2] & 0x04); }
    bool tc() const { return msg.size() >= 3 && (msg[2] & 0x02); }
};
Exchange exchange(const std::string& servers_csv, const std::string& name, int type, bool tcp, bool rd, int timeout_ms);

// A name as the checks compare it: ASCII lower case (dns::ascii_lower), no trailing dot.
std::string lower_name(std::string s);

// "ADDR" or "ADDR:PORT" / "[V6]:PORT" as c-ares's server list entry; empty when not an address.
std::string server_entry(const std::string& addr, uint16_t port);

// The records of `type` in an answer's answer section, rendered in presentation form the same
// way whoever sent them (TXT: the strings joined, quoted; MX: "0 ."; CAA: `0 issue ";"`; NS:
// names; SOA: all seven fields), sorted. Empty when there are none or the answer is malformed.
std::vector<std::string> render(const std::vector<uint8_t>& msg, int type);

// A referral or authoritative NS answer for `zone`: the NS names (lower case, no trailing
// dot) of the answer or authority section owned by `zone`, and the glue addresses given for
// them in the additional section. soa: the authority section holds an SOA (no delegation).
struct Delegation {
    std::vector<std::string> ns;
    std::vector<std::pair<std::string, std::string>> glue;  // (name, address)
    bool soa = false;
};
Delegation delegation(const std::vector<uint8_t>& msg, const std::string& zone);

}  // namespace dp::check
