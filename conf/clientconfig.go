package conf

import (
	"net/url"
	"strings"
	"time"
)

// ClientConfig configures the client config the gateway publishes on its traffic
// listener at /.well-known/shiftgate/client-config, from which apps decide their
// region with the gateway's own algorithm. What regions publish is regions.R.public_url.
type ClientConfig struct {
	// TTL is how often clients should fetch the config again: the document's ttl and
	// the max-age of its Cache-Control, in whole seconds (1s..24h, default 60s).
	TTL Duration `yaml:"ttl"`
}

// DefaultClientConfigTTL is client_config.ttl when the file is silent.
const DefaultClientConfigTTL = 60 * time.Second

// maxClientConfigTTL bounds client_config.ttl: a lever (rollback, cut-off) must reach
// clients that honour the ttl within a day at worst.
const maxClientConfigTTL = 24 * time.Hour

func (p *parser) checkClientConfig(c *Config) {
	cc := &c.ClientConfig
	p.unit("client_config.ttl", cc.TTL.err)
	if cc.TTL.err != "" {
		return
	}
	if cc.TTL.D < time.Second || cc.TTL.D > maxClientConfigTTL || cc.TTL.D%time.Second != 0 {
		p.errf("client_config.ttl", "want whole seconds from 1s to 24h, got %s", cc.TTL.D)
	}
}

// checkPublicURL validates regions.R.public_url and normalises it without a trailing
// slash, so that clients can append a request path to it. It is published to anyone,
// so it may not carry credentials.
func (p *parser) checkPublicURL(path string, r *Region) {
	if r.PublicURL == "" {
		return
	}
	u, err := url.Parse(r.PublicURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		p.errf(path, "want an absolute http or https URL such as https://cloud.example.com, got %q", r.PublicURL)
	case u.User != nil:
		p.errf(path, "must not carry credentials: the client config is public")
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(r.PublicURL, "?#"):
		p.errf(path, "want a base URL without query or fragment, got %q", r.PublicURL)
	default:
		r.PublicURL = strings.TrimRight(r.PublicURL, "/")
	}
}
