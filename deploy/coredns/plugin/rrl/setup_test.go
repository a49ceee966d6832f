package rrl

import (
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
)

func parseString(input string) (*RRL, error) {
	c := caddy.NewTestController("dns", input)
	c.ServerBlockKeys = []string{"example.org:53"}
	return parse(c)
}

func TestSetupDefaults(t *testing.T) {
	rl, err := parseString("rrl")
	if err != nil {
		t.Fatal(err)
	}
	if len(rl.Zones) != 1 || rl.Zones[0] != "example.org." {
		t.Errorf("zones %v, want the server block's [example.org.]", rl.Zones)
	}
	if rl.window != 15*time.Second || rl.ipv4Prefix != 24 || rl.ipv6Prefix != 56 ||
		rl.slipRatio != 2 || rl.table.max != 100000 || rl.reportOnly {
		t.Errorf("defaults: window %v ipv4 %d ipv6 %d slip %d table %d report-only %v",
			rl.window, rl.ipv4Prefix, rl.ipv6Prefix, rl.slipRatio, rl.table.max, rl.reportOnly)
	}
	if rl.costs != [numCategories]time.Duration{} || rl.requestCost != 0 {
		t.Errorf("costs %v / %v, want no limits", rl.costs, rl.requestCost)
	}
}

func TestSetupAllOptions(t *testing.T) {
	rl, err := parseString(`rrl example.com example.net {
		window 5
		ipv4-prefix-length 32
		ipv6-prefix-length 64
		responses-per-second 100
		nodata-per-second 50
		nxdomains-per-second 20
		referrals-per-second 10
		errors-per-second 4
		slip-ratio 0
		requests-per-second 1000
		max-table-size 10
		report-only
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rl.Zones, " ") != "example.com. example.net." {
		t.Errorf("zones %v", rl.Zones)
	}
	if rl.window != 5*time.Second || rl.ipv4Prefix != 32 || rl.ipv6Prefix != 64 ||
		rl.slipRatio != 0 || rl.table.max != 10 || !rl.reportOnly {
		t.Errorf("window %v ipv4 %d ipv6 %d slip %d table %d report-only %v",
			rl.window, rl.ipv4Prefix, rl.ipv6Prefix, rl.slipRatio, rl.table.max, rl.reportOnly)
	}
	ms := time.Millisecond
	want := [numCategories]time.Duration{10 * ms, 20 * ms, 50 * ms, 100 * ms, 250 * ms}
	if rl.costs != want || rl.requestCost != ms {
		t.Errorf("costs %v / %v, want %v / %v", rl.costs, rl.requestCost, want, ms)
	}
}

func TestSetupCategoryDefaultsFollowResponses(t *testing.T) {
	rl, err := parseString("rrl {\nresponses-per-second 10\nerrors-per-second 0\n}")
	if err != nil {
		t.Fatal(err)
	}
	d := 100 * time.Millisecond
	want := [numCategories]time.Duration{d, d, d, d, 0}
	if rl.costs != want {
		t.Errorf("costs %v, want %v (errors explicitly unlimited)", rl.costs, want)
	}
}

func TestSetupErrors(t *testing.T) {
	for _, tc := range []struct{ input, err string }{
		{"rrl {\nwindow 0\n}", "window must be an integer from 1 to 3600"},
		{"rrl {\nwindow\n}", "window takes one argument, got 0"},
		{"rrl {\nwindow 1 2\n}", "window takes one argument, got 2"},
		{"rrl {\nipv4-prefix-length 33\n}", "ipv4-prefix-length must be an integer from 1 to 32"},
		{"rrl {\nipv6-prefix-length 0\n}", "ipv6-prefix-length must be an integer from 1 to 128"},
		{"rrl {\nresponses-per-second -1\n}", "responses-per-second must be an integer"},
		{"rrl {\nresponses-per-second 1.5\n}", "responses-per-second must be an integer"},
		{"rrl {\nnodata-per-second x\n}", "nodata-per-second must be an integer"},
		{"rrl {\nslip-ratio 11\n}", "slip-ratio must be an integer from 0 to 10"},
		{"rrl {\nmax-table-size 0\n}", "max-table-size must be an integer from 1"},
		{"rrl {\nreport-only yes\n}", "report-only takes no argument"},
		{"rrl {\nwindow 5\nwindow 6\n}", "window given twice"},
		{"rrl {\nresponses-per-secnd 5\n}", `unknown option "responses-per-secnd"`},
		{"rrl\nrrl", "only be used once"},
	} {
		_, err := parseString(tc.input)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want one containing %q", tc.input, err, tc.err)
		}
	}
}

// FuzzParse: any block is either accepted with sane values or rejected, never a panic.
func FuzzParse(f *testing.F) {
	f.Add("window 5\nresponses-per-second 10\nslip-ratio 2")
	f.Add("requests-per-second 1000\nreport-only")
	f.Add("ipv6-prefix-length 128\nmax-table-size 1")
	f.Fuzz(func(t *testing.T, block string) {
		rl, err := parseString("rrl {\n" + block + "\n}")
		if err != nil {
			return
		}
		if rl.window < time.Second || rl.ipv4Prefix < 1 || rl.ipv4Prefix > 32 || rl.ipv6Prefix < 1 ||
			rl.ipv6Prefix > 128 || rl.slipRatio > 10 || rl.table.max < 1 {
			t.Errorf("accepted out-of-range settings from %q", block)
		}
	})
}
