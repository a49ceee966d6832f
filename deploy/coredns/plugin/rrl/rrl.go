// Package rrl is a CoreDNS plugin for response rate limiting (RRL) and request rate limiting,
// after BIND's RRL, with the Corefile syntax of the coredns/rrl external plugin.
package rrl

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

var log = clog.NewWithPlugin("rrl")

// Response categories, each with its own allowance; also the "category" metric label.
const (
	catResponse = iota // NOERROR with answers: limited per qname and qtype
	catNodata          // NOERROR, empty, not a referral: per qname, any qtype
	catNXDomain        // NXDOMAIN: per zone (owner of the SOA in AUTHORITY), any name below it
	catReferral        // NOERROR, empty, NS in AUTHORITY: per delegation (owner of the NS)
	catError           // any other rcode: per client prefix only
	numCategories
)

var categoryNames = [numCategories]string{"response", "nodata", "nxdomain", "referral", "error"}

// RRL is the plugin. Its fields are set by setup and read-only afterwards.
type RRL struct {
	Next  plugin.Handler
	Zones []string

	window     time.Duration
	ipv4Prefix int
	ipv6Prefix int
	// costs[c] is what one response of category c takes from a balance (1s/ALLOWANCE); 0: not limited.
	costs       [numCategories]time.Duration
	requestCost time.Duration // 0: requests not limited
	slipRatio   uint64
	reportOnly  bool

	table *table
	now   func() time.Time // time.Now; tests substitute a fake clock
}

// Name implements plugin.Handler.
func (rl *RRL) Name() string { return "rrl" }

// ServeDNS implements plugin.Handler.
func (rl *RRL) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	if plugin.Zones(rl.Zones).Matches(state.Name()) == "" {
		return plugin.NextOrFailure(rl.Name(), rl.Next, ctx, w, r)
	}
	server := metrics.WithServer(ctx)
	if state.Proto() == "tcp" {
		// A TCP client has completed a handshake, so its address is not spoofed: no reflection.
		responsesExempt.WithLabelValues(server).Inc()
		return plugin.NextOrFailure(rl.Name(), rl.Next, ctx, w, r)
	}
	prefix := rl.clientPrefix(state.IP())

	if rl.requestCost > 0 {
		v := rl.debit(server, prefix+"|request", rl.requestCost)
		if v.limited {
			requestsDropped.WithLabelValues(server).Inc()
			if v.nth == 1 {
				log.Infof("limiting requests from %s%s", prefix, rl.reportSuffix())
			}
			if !rl.reportOnly {
				return dns.RcodeSuccess, nil // dropped: nothing is written
			}
		}
	}

	rw := &writer{ResponseWriter: w, rl: rl, server: server, prefix: prefix}
	rc, err := plugin.NextOrFailure(rl.Name(), rl.Next, ctx, rw, r)
	if !plugin.ClientWrite(rc) {
		// The server would write this error reply itself, straight to the client, past the
		// limiter: write it here instead, through the limiter, and tell the server it is done.
		if !rw.wrote {
			m := new(dns.Msg)
			m.SetRcode(r, rc)
			state.SizeAndDo(m)
			rw.WriteMsg(m)
		}
		return dns.RcodeSuccess, err
	}
	return rc, err
}

func (rl *RRL) debit(server, key string, cost time.Duration) verdict {
	v := rl.table.debit(key, rl.now(), cost, rl.window)
	if v.evicted {
		tableEvictions.WithLabelValues(server).Inc()
	}
	return v
}

func (rl *RRL) reportSuffix() string {
	if rl.reportOnly {
		return " (report-only)"
	}
	return ""
}

// clientPrefix returns the client's network, e.g. "192.0.2.0/24", which its accounts are keyed by.
func (rl *RRL) clientPrefix(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	bits := rl.ipv6Prefix
	if addr.Is4() {
		bits = rl.ipv4Prefix
	}
	p, err := addr.WithZone("").Prefix(bits)
	if err != nil {
		return ip
	}
	return p.String()
}

// classify returns the category of response m and the name its account is keyed by (besides
// the client prefix): qname/qtype, qname, zone, delegation or nothing.
func classify(m *dns.Msg) (int, string) {
	var qname string
	var qtype uint16
	if len(m.Question) > 0 {
		qname, qtype = strings.ToLower(m.Question[0].Name), m.Question[0].Qtype
	}
	switch {
	case m.Rcode == dns.RcodeNameError:
		return catNXDomain, authorityOwner(m, dns.TypeSOA, qname)
	case m.Rcode != dns.RcodeSuccess:
		return catError, ""
	case len(m.Answer) > 0:
		return catResponse, qname + "/" + dns.Type(qtype).String()
	}
	var hasNS, hasSOA bool
	for _, rr := range m.Ns {
		switch rr.Header().Rrtype {
		case dns.TypeNS:
			hasNS = true
		case dns.TypeSOA:
			hasSOA = true
		}
	}
	if hasNS && !hasSOA {
		return catReferral, authorityOwner(m, dns.TypeNS, qname)
	}
	return catNodata, qname
}

// authorityOwner returns the owner of the first record of type t in AUTHORITY, or fallback.
func authorityOwner(m *dns.Msg, t uint16, fallback string) string {
	for _, rr := range m.Ns {
		if rr.Header().Rrtype == t {
			return strings.ToLower(rr.Header().Name)
		}
	}
	return fallback
}

// writer applies response rate limiting to what the plugins after rrl write.
type writer struct {
	dns.ResponseWriter
	rl     *RRL
	server string
	prefix string
	wrote  bool
}

// WriteMsg implements dns.ResponseWriter: it sends m, drops it, or slips an empty TC=1 reply.
func (w *writer) WriteMsg(m *dns.Msg) error {
	w.wrote = true
	cat, name := classify(m)
	cost := w.rl.costs[cat]
	if cost == 0 {
		return w.ResponseWriter.WriteMsg(m)
	}
	v := w.rl.debit(w.server, w.prefix+"|"+categoryNames[cat]+"|"+name, cost)
	if !v.limited {
		return w.ResponseWriter.WriteMsg(m)
	}
	slip := w.rl.slipRatio > 0 && v.nth%w.rl.slipRatio == 0
	if slip {
		responsesSlipped.WithLabelValues(w.server, categoryNames[cat]).Inc()
	} else {
		responsesDropped.WithLabelValues(w.server, categoryNames[cat]).Inc()
	}
	if v.nth == 1 {
		what := categoryNames[cat]
		if name != "" {
			what += " " + name
		}
		log.Infof("limiting responses to %s (%s)%s", w.prefix, what, w.rl.reportSuffix())
	}
	switch {
	case w.rl.reportOnly:
		return w.ResponseWriter.WriteMsg(m)
	case slip:
		// Same header and question, no records, TC=1: a real client retries over TCP, which
		// is exempt; a spoofed victim receives a reply no larger than the query.
		tc := new(dns.Msg)
		tc.MsgHdr = m.MsgHdr
		tc.Truncated = true
		tc.Question = m.Question
		return w.ResponseWriter.WriteMsg(tc)
	default:
		return nil
	}
}

// Write implements dns.ResponseWriter for plugins that write packed messages.
func (w *writer) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		w.wrote = true
		return w.ResponseWriter.Write(b)
	}
	if err := w.WriteMsg(m); err != nil {
		return 0, err
	}
	return len(b), nil
}
