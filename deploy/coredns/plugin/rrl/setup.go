package rrl

import (
	"fmt"
	"strconv"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

func init() { plugin.Register("rrl", setup) }

func setup(c *caddy.Controller) error {
	rl, err := parse(c)
	if err != nil {
		return plugin.Error("rrl", err)
	}
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		rl.Next = next
		return rl
	})
	return nil
}

// Defaults, as in BIND and coredns/rrl.
const (
	defaultWindow       = 15
	defaultIPv4Prefix   = 24
	defaultIPv6Prefix   = 56
	defaultSlipRatio    = 2
	defaultMaxTableSize = 100000
)

// parse reads
//
//	rrl [ZONES...] {
//	    window SECONDS
//	    ipv4-prefix-length LENGTH
//	    ipv6-prefix-length LENGTH
//	    responses-per-second ALLOWANCE
//	    nodata-per-second ALLOWANCE
//	    nxdomains-per-second ALLOWANCE
//	    referrals-per-second ALLOWANCE
//	    errors-per-second ALLOWANCE
//	    slip-ratio N
//	    requests-per-second ALLOWANCE
//	    max-table-size SIZE
//	    report-only
//	}
func parse(c *caddy.Controller) (*RRL, error) {
	rl := &RRL{
		window:     defaultWindow * time.Second,
		ipv4Prefix: defaultIPv4Prefix,
		ipv6Prefix: defaultIPv6Prefix,
		slipRatio:  defaultSlipRatio,
		now:        time.Now,
	}
	maxTable := defaultMaxTableSize
	// Allowances in responses (or requests) per second; -1: not given.
	allowance := [numCategories]int{-1, -1, -1, -1, -1}
	requests := 0
	categoryOption := map[string]int{
		"responses-per-second": catResponse,
		"nodata-per-second":    catNodata,
		"nxdomains-per-second": catNXDomain,
		"referrals-per-second": catReferral,
		"errors-per-second":    catError,
	}

	blocks := 0
	for c.Next() {
		if blocks++; blocks > 1 {
			return nil, plugin.ErrOnce
		}
		rl.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		seen := map[string]bool{}
		for c.NextBlock() {
			option := c.Val()
			if seen[option] {
				return nil, c.Errf("%s given twice", option)
			}
			seen[option] = true
			args := c.RemainingArgs()
			if option == "report-only" {
				if len(args) != 0 {
					return nil, c.Errf("report-only takes no argument")
				}
				rl.reportOnly = true
				continue
			}
			if len(args) != 1 {
				return nil, c.Errf("%s takes one argument, got %d", option, len(args))
			}
			arg := args[0]
			var err error
			switch option {
			case "window":
				var n int
				n, err = intArg(option, arg, 1, 3600)
				rl.window = time.Duration(n) * time.Second
			case "ipv4-prefix-length":
				rl.ipv4Prefix, err = intArg(option, arg, 1, 32)
			case "ipv6-prefix-length":
				rl.ipv6Prefix, err = intArg(option, arg, 1, 128)
			case "slip-ratio":
				var n int
				n, err = intArg(option, arg, 0, 10)
				rl.slipRatio = uint64(n)
			case "max-table-size":
				maxTable, err = intArg(option, arg, 1, 100000000)
			case "requests-per-second":
				requests, err = allowanceArg(option, arg)
			default:
				cat, ok := categoryOption[option]
				if !ok {
					return nil, c.Errf("unknown option %q", option)
				}
				allowance[cat], err = allowanceArg(option, arg)
			}
			if err != nil {
				return nil, c.Err(err.Error())
			}
		}
	}

	for cat := range allowance {
		if allowance[cat] < 0 { // not given: responses-per-second's, itself 0 (no limit) when not given
			allowance[cat] = max(allowance[catResponse], 0)
		}
		rl.costs[cat] = cost(allowance[cat])
	}
	rl.requestCost = cost(requests)
	rl.table = newTable(maxTable)
	return rl, nil
}

// cost returns the share of a second's credit one response takes at allowance per second.
func cost(allowance int) time.Duration {
	if allowance <= 0 {
		return 0
	}
	return time.Second / time.Duration(allowance)
}

func intArg(option, arg string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer from %d to %d, got %q", option, lo, hi, arg)
	}
	return n, nil
}

// allowanceArg parses a rate: a whole number of responses (or requests) per second, as in BIND;
// 0 means no limit.
func allowanceArg(option, arg string) (int, error) {
	return intArg(option, arg, 0, 1000000)
}
