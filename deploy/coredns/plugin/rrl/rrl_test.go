package rrl

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// backend answers like a parking server: TXT at a name, NODATA for other types, NXDOMAIN under
// "nx.", a referral under "deleg.", and SERVFAIL (returned, not written) under "fail.".
type backend struct{ calls atomic.Int64 }

func (b *backend) Name() string { return "backend" }

func (b *backend) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	b.calls.Add(1)
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	soa := test.SOA("example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 1 10800 3600 604800 3600")
	switch {
	case strings.HasSuffix(q.Name, "fail.example.org."):
		return dns.RcodeServerFailure, nil
	case strings.HasSuffix(q.Name, "nx.example.org."):
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa}
	case strings.HasSuffix(q.Name, "deleg.example.org."):
		m.Ns = []dns.RR{test.NS("deleg.example.org. 3600 IN NS ns.deleg.example.org.")}
	case q.Qtype == dns.TypeTXT:
		m.Answer = []dns.RR{test.TXT(q.Name + " 3600 IN TXT \"v=spf1 -all\"")}
	default:
		m.Ns = []dns.RR{soa}
	}
	return dns.RcodeSuccess, w.WriteMsg(m)
}

// recorder is a client: it keeps every message written to it.
type recorder struct {
	test.ResponseWriter
	msgs []*dns.Msg
}

func (r *recorder) WriteMsg(m *dns.Msg) error { r.msgs = append(r.msgs, m); return nil }

// fixture is an RRL plugin configured from a Corefile block, in front of a backend, on a fake clock.
type fixture struct {
	t     *testing.T
	rl    *RRL
	back  *backend
	clock time.Time
}

func newFixture(t *testing.T, corefile string) *fixture {
	t.Helper()
	c := caddy.NewTestController("dns", corefile)
	c.ServerBlockKeys = []string{"."}
	rl, err := parse(c)
	if err != nil {
		t.Fatalf("parse %q: %v", corefile, err)
	}
	f := &fixture{t: t, rl: rl, back: &backend{}, clock: time.Unix(1000000, 0)}
	rl.Next = f.back
	rl.now = func() time.Time { return f.clock }
	return f
}

func (f *fixture) advance(d time.Duration) { f.clock = f.clock.Add(d) }

// query sends one query from client ip over UDP (or TCP) and returns what the client received:
// "answer", "tc" (a slipped empty truncated reply), "dropped", or the rcode name.
func (f *fixture) query(ip, name string, qtype uint16, tcp bool) string {
	f.t.Helper()
	w := &recorder{ResponseWriter: test.ResponseWriter{RemoteIP: ip, TCP: tcp}}
	r := new(dns.Msg)
	r.SetQuestion(dns.Fqdn(name), qtype)
	rc, _ := f.rl.ServeDNS(context.Background(), w, r)
	if !plugin.ClientWrite(rc) {
		f.t.Fatalf("ServeDNS returned rcode %s for the server to write: it must write it itself", dns.RcodeToString[rc])
	}
	switch {
	case len(w.msgs) == 0:
		return "dropped"
	case len(w.msgs) > 1:
		f.t.Fatalf("%d messages written for one query", len(w.msgs))
	}
	m := w.msgs[0]
	switch {
	case m.Truncated:
		if len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 {
			f.t.Fatalf("slipped reply has records: %v", m)
		}
		return "tc"
	case m.Rcode == dns.RcodeSuccess:
		return "answer"
	}
	return dns.RcodeToString[m.Rcode]
}

// burst sends n identical UDP queries and returns the outcomes joined by spaces.
func (f *fixture) burst(n int, ip, name string, qtype uint16) string {
	f.t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = f.query(ip, name, qtype, false)
	}
	return strings.Join(out, " ")
}

func counter(c *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

func TestResponsesDropAndSlip(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 2\nwindow 5\n}")
	dropped0 := counter(responsesDropped, "", "response")
	slipped0 := counter(responsesSlipped, "", "response")

	// A fresh account holds one second of allowance; then every 2nd suppressed reply slips.
	expect(t, "burst", f.burst(7, "192.0.2.1", "example.org", dns.TypeTXT),
		"answer answer dropped tc dropped tc dropped")
	if d, s := counter(responsesDropped, "", "response")-dropped0, counter(responsesSlipped, "", "response")-slipped0; d != 3 || s != 2 {
		t.Errorf("dropped %v slipped %v, want 3 and 2", d, s)
	}
	// The balance owes 2.5 s: one second later it is still negative.
	f.advance(time.Second)
	expect(t, "after 1 s", f.burst(1, "192.0.2.1", "example.org", dns.TypeTXT), "tc")
	// Credit accrues at 2 per second and is capped at 2: a long pause allows exactly 2.
	f.advance(time.Hour)
	expect(t, "after an hour", f.burst(3, "192.0.2.1", "example.org", dns.TypeTXT), "answer answer dropped")
	// Sustained 2 per second passes.
	f.advance(time.Hour)
	for i := 0; i < 10; i++ {
		f.advance(time.Second)
		expect(t, "steady rate", f.burst(2, "192.0.2.1", "example.org", dns.TypeTXT), "answer answer")
	}
}

func TestWindowBoundsDebt(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 10\nwindow 2\nslip-ratio 0\n}")
	// A long attack owes at most window seconds: 2 s after it stops the client is served again.
	f.burst(1000, "192.0.2.1", "example.org", dns.TypeTXT)
	f.advance(1900 * time.Millisecond)
	expect(t, "after 1.9 s", f.query("192.0.2.1", "example.org", dns.TypeTXT, false), "dropped")
	f.advance(300 * time.Millisecond) // the suppressed query above cost 0.1 s too
	expect(t, "after 2.2 s", f.query("192.0.2.1", "example.org", dns.TypeTXT, false), "answer")
}

func TestAccountsAreSeparate(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 1\nslip-ratio 0\n}")
	expect(t, "first", f.burst(2, "192.0.2.1", "example.org", dns.TypeTXT), "answer dropped")
	// The same /24 shares the account, and names are case-insensitive.
	expect(t, "same /24", f.query("192.0.2.200", "EXAMPLE.org", dns.TypeTXT, false), "dropped")
	// Another /24, another name, another type, another category: fresh accounts.
	expect(t, "other prefix", f.query("192.0.3.1", "example.org", dns.TypeTXT, false), "answer")
	expect(t, "other name", f.query("192.0.2.1", "a.example.org", dns.TypeTXT, false), "answer")
	expect(t, "other type (nodata)", f.query("192.0.2.1", "example.org", dns.TypeA, false), "answer")
	// IPv6 clients are grouped by /56.
	expect(t, "v6", f.burst(2, "2001:db8:0:1::1", "example.org", dns.TypeTXT), "answer dropped")
	expect(t, "same /56", f.query("2001:db8:0:ff::2", "example.org", dns.TypeTXT, false), "dropped")
	expect(t, "other /56", f.query("2001:db8:0:100::1", "example.org", dns.TypeTXT, false), "answer")
}

func TestCategoryKeys(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 100\nnodata-per-second 1\nnxdomains-per-second 1\nreferrals-per-second 1\nerrors-per-second 1\nslip-ratio 0\n}")
	// NODATA: per name, whatever the type.
	expect(t, "nodata", f.query("192.0.2.1", "www.example.org", dns.TypeA, false), "answer")
	expect(t, "nodata other type", f.query("192.0.2.1", "www.example.org", dns.TypeAAAA, false), "dropped")
	// NXDOMAIN: per zone, whatever the name below it (random-subdomain floods share one account).
	expect(t, "nxdomain", f.query("192.0.2.1", "a.nx.example.org", dns.TypeA, false), "NXDOMAIN")
	expect(t, "nxdomain other name", f.query("192.0.2.1", "b.nx.example.org", dns.TypeTXT, false), "dropped")
	// Referrals: per delegation.
	expect(t, "referral", f.query("192.0.2.1", "a.deleg.example.org", dns.TypeA, false), "answer")
	expect(t, "referral other name", f.query("192.0.2.1", "b.deleg.example.org", dns.TypeA, false), "dropped")
	// Errors: per client prefix only. The backend returns SERVFAIL without writing it; rrl
	// writes it through the limiter.
	dropped0 := counter(responsesDropped, "", "error")
	expect(t, "error", f.query("192.0.2.1", "a.fail.example.org", dns.TypeA, false), "SERVFAIL")
	expect(t, "error other name", f.query("192.0.2.1", "b.fail.example.org", dns.TypeMX, false), "dropped")
	if d := counter(responsesDropped, "", "error") - dropped0; d != 1 {
		t.Errorf("error responses dropped %v, want 1", d)
	}
	// Positive answers have their own, larger allowance.
	expect(t, "responses", f.burst(5, "192.0.2.1", "example.org", dns.TypeTXT), "answer answer answer answer answer")
}

func TestTCPIsExempt(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 1\nrequests-per-second 1\n}")
	exempt0 := counter(responsesExempt, "")
	for i := 0; i < 20; i++ {
		expect(t, "tcp", f.query("192.0.2.1", "example.org", dns.TypeTXT, true), "answer")
	}
	if d := counter(responsesExempt, "") - exempt0; d != 20 {
		t.Errorf("exempt %v, want 20", d)
	}
	// UDP from the same client is still limited, and TCP did not use up its allowance.
	expect(t, "udp", f.burst(3, "192.0.2.1", "example.org", dns.TypeTXT), "answer dropped dropped")
}

func TestRequestsPerSecond(t *testing.T) {
	f := newFixture(t, "rrl {\nrequests-per-second 3\n}")
	dropped0 := counter(requestsDropped, "")
	// Per prefix, whatever the name; over the limit the query never reaches the next plugin
	// and is never slipped.
	expect(t, "burst", f.burst(2, "192.0.2.1", "a.example.org", dns.TypeTXT)+" "+
		f.burst(3, "192.0.2.9", "b.example.org", dns.TypeA), "answer answer answer dropped dropped")
	if n := f.back.calls.Load(); n != 3 {
		t.Errorf("backend saw %d queries, want 3", n)
	}
	if d := counter(requestsDropped, "") - dropped0; d != 2 {
		t.Errorf("requests dropped %v, want 2", d)
	}
	// Suppressed queries cost credit too: the two above put the account 2/3 s in debt.
	f.advance(time.Second)
	expect(t, "one more after 1 s", f.burst(2, "192.0.2.1", "c.example.org", dns.TypeTXT), "answer dropped")
}

func TestReportOnly(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 1\nrequests-per-second 2\nreport-only\n}")
	reqs0, resp0 := counter(requestsDropped, ""), counter(responsesDropped, "", "response")
	slip0 := counter(responsesSlipped, "", "response")
	expect(t, "burst", f.burst(4, "192.0.2.1", "example.org", dns.TypeTXT), "answer answer answer answer")
	if d := counter(requestsDropped, "") - reqs0; d != 2 {
		t.Errorf("requests counted %v, want 2", d)
	}
	// Responses 2..4 would have been suppressed: dropped, slipped, dropped.
	if d, s := counter(responsesDropped, "", "response")-resp0, counter(responsesSlipped, "", "response")-slip0; d != 2 || s != 1 {
		t.Errorf("responses counted dropped %v slipped %v, want 2 and 1", d, s)
	}
}

func TestSlipRatio(t *testing.T) {
	for _, tc := range []struct{ ratio, want string }{
		{"0", "answer dropped dropped dropped dropped"},
		{"1", "answer tc tc tc tc"},
		{"3", "answer dropped dropped tc dropped"},
	} {
		f := newFixture(t, "rrl {\nresponses-per-second 1\nslip-ratio "+tc.ratio+"\n}")
		expect(t, "slip-ratio "+tc.ratio, f.burst(5, "192.0.2.1", "example.org", dns.TypeTXT), tc.want)
	}
}

func TestZones(t *testing.T) {
	f := newFixture(t, "rrl example.org {\nresponses-per-second 1\nslip-ratio 0\n}")
	expect(t, "in zone", f.burst(2, "192.0.2.1", "example.org", dns.TypeTXT), "answer dropped")
	expect(t, "out of zone", f.burst(3, "192.0.2.1", "example.com", dns.TypeTXT), "answer answer answer")
}

func TestNoLimitsByDefault(t *testing.T) {
	f := newFixture(t, "rrl")
	expect(t, "burst", f.burst(3, "192.0.2.1", "example.org", dns.TypeTXT), "answer answer answer")
	if n := f.rl.table.len(); n != 0 {
		t.Errorf("%d accounts with no limits, want 0", n)
	}
}

func TestTableIsBounded(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 1\nslip-ratio 0\nmax-table-size 2\n}")
	ev0 := counter(tableEvictions, "")
	expect(t, "a", f.burst(2, "192.0.2.1", "a.example.org", dns.TypeTXT), "answer dropped")
	expect(t, "b", f.burst(2, "192.0.2.1", "b.example.org", dns.TypeTXT), "answer dropped")
	expect(t, "c", f.burst(2, "192.0.2.1", "c.example.org", dns.TypeTXT), "answer dropped")
	if n := f.rl.table.len(); n != 2 {
		t.Errorf("table holds %d accounts, want 2", n)
	}
	// a was the least recently used: evicted, so it starts again with a full balance.
	expect(t, "a again", f.query("192.0.2.1", "a.example.org", dns.TypeTXT, false), "answer")
	expect(t, "c kept", f.query("192.0.2.1", "c.example.org", dns.TypeTXT, false), "dropped")
	if d := counter(tableEvictions, "") - ev0; d != 2 {
		t.Errorf("evictions %v, want 2", d)
	}
}

// TestConcurrentClients is for the race detector (test.sh -race): many clients at once, the
// table stays within its bound.
func TestConcurrentClients(t *testing.T) {
	f := newFixture(t, "rrl {\nresponses-per-second 5\nrequests-per-second 50\nmax-table-size 64\n}")
	f.rl.now = time.Now // the fake clock is not safe for concurrent use
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 500; i++ {
				w := &recorder{ResponseWriter: test.ResponseWriter{RemoteIP: "192.0." + strconv.Itoa(g*20+i%20) + ".1"}}
				r := new(dns.Msg)
				r.SetQuestion("n"+strconv.Itoa(i%7)+".example.org.", dns.TypeTXT)
				f.rl.ServeDNS(context.Background(), w, r)
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	if n := f.rl.table.len(); n > 64 {
		t.Errorf("table holds %d accounts, bound is 64", n)
	}
}
