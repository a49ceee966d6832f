// Command coredns-park is CoreDNS with the stock plugins domain-park's Corefile uses plus the
// rrl (response rate limiting) plugin of this module, compiled the documented way for external
// plugins: import coremain, the plugins, and set the directive order.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// Stock plugins: only those named in directives below, so the binary stays small and
	// does not pull in the dependencies of the other plugins (Kubernetes, cloud SDKs...).
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/cancel"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/timeouts"
	_ "github.com/coredns/coredns/plugin/tls"

	_ "domain-park/coredns-park/plugin/rrl"
)

// directives is the plugin order: a query passes through the plugins from top to bottom,
// whatever their order in the Corefile. It is stock CoreDNS's order (plugin.cfg) restricted to
// the plugins above (plus metadata, debug and dnstap, which forward compiles in anyway), with
// rrl inserted after log and before any and cache, so that rate
// limiting sees every response, including ANY refusals and cache hits, and errors, log and
// prometheus still see every query.
var directives = []string{
	"metadata",
	"cancel",
	"tls",
	"timeouts",
	"reload",
	"bufsize",
	"bind",
	"debug",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"dnstap",
	"rrl",
	"any",
	"cache",
	"forward",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
