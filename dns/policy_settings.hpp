// The parking policy's settings and the Public Suffix List's, declared once
// (config/settings.hpp): the worker's readers, help and README table come from these.
#pragma once

#include <vector>

#include "config/settings.hpp"
#include "dns/policy.hpp"

namespace dp::dns {

// Settings of the answers (name servers, DMARC, TTLs, SOA, lists), the list settings below
// included (as the `psl` member).
const std::vector<config::Setting<PolicySettings>>& policy_settings();
// psl_file, psl_private, psl_memo_entries: shared by the worker's answers and the balancer's
// response rate limiting (which keys answers on the registrable domain).
const std::vector<config::Setting<SuffixListSettings>>& suffix_list_settings();
// cookies, cookie_secret, cookie_secret_previous: the same in the worker's answers and the
// balancer's fronts (each computes cookies for its own clients).
const std::vector<config::Setting<CookieSettings>>& cookie_settings();

}  // namespace dp::dns
