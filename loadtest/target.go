package loadtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
)

// target is a parsed, checked load target.
type target struct {
	dial string // host:port the client dials
	host string // Host header
	uri  string // request URI sent: path and query
	tls  bool   // https://
	sni  string // the URL's host name, for TLS ("" for an IP address)
}

// lookupFunc resolves a host name; tests inject a fake.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// parseTarget checks raw and, unless allowRemote, that it reaches only loopback.
// A host name is resolved here and, when remote targets are refused, the client dials
// the address checked rather than resolving the name again, so a changing DNS answer
// cannot move the load elsewhere.
func parseTarget(ctx context.Context, raw string, allowRemote bool, lookup lookupFunc) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("loadtest: target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return target{}, fmt.Errorf("loadtest: target %q: want an http:// or https:// URL", raw)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return target{}, fmt.Errorf("loadtest: target %q: no host", raw)
	}
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	t := target{dial: net.JoinHostPort(host, port), host: u.Host, uri: u.RequestURI(), tls: u.Scheme == "https"}
	if _, err := netip.ParseAddr(host); err != nil {
		t.sni = host
	}
	if allowRemote {
		return t, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.Unmap().IsLoopback() {
			return target{}, fmt.Errorf("%w: %s", ErrRemoteTarget, host)
		}
		return t, nil
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return target{}, fmt.Errorf("loadtest: target %q: %w", raw, err)
	}
	if len(addrs) == 0 {
		return target{}, fmt.Errorf("loadtest: target %q: host has no address", raw)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return target{}, fmt.Errorf("%w: %s resolves to %s", ErrRemoteTarget, host, a)
		}
	}
	t.dial = net.JoinHostPort(addrs[0].Unmap().String(), port)
	return t, nil
}
