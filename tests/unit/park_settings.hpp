// The parking policy the unit tests answer with: two name servers (one with IPv4 and IPv6
// glue), a DMARC rua address and an identity for NSID.
#pragma once

#include "dns/policy.hpp"

namespace dptest {

inline dp::dns::PolicySettings park_settings() {
    dp::dns::PolicySettings s;
    s.nameservers.push_back(dp::dns::parse_nameserver("ns1.park.example:192.0.2.53,2001:db8::53"));
    s.nameservers.push_back(dp::dns::parse_nameserver("ns2.park.example:192.0.2.54"));
    s.rua = "agg@park.example";
    s.identity = "worker-7";
    return s;
}

}  // namespace dptest
