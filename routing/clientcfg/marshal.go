package clientcfg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Marshal encodes cfg canonically and returns the bytes and an ETag for them: equal
// configs give equal bytes (fields in a fixed order, regions sorted by name, empty
// lists as [] and not null), and the ETag is the quoted hex of their xxhash64, so it
// changes whenever any field does. The gateway serves the bytes with the ETag and
// answers 304 to a request whose If-None-Match carries it. cfg is not modified.
func Marshal(cfg *Config) (body []byte, etag string, err error) {
	c := *cfg
	if c.Regions == nil {
		c.Regions = map[string]Region{}
	}
	c.Routes = make([]Route, len(cfg.Routes))
	copy(c.Routes, cfg.Routes)
	for i := range c.Routes {
		if c.Routes[i].Keys == nil {
			c.Routes[i].Keys = []string{}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Paths and URLs stay readable: no \u003c for '<' and '&'.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, "", err
	}
	body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return body, ETag(body), nil
}

// ETag returns the strong entity tag of a config's bytes: `"` + 16 hex digits of
// xxhash64(body) + `"`.
func ETag(body []byte) string {
	return fmt.Sprintf(`"%016x"`, xxhash.Sum64(body))
}

// MatchETag reports whether an If-None-Match header value names etag: one of a list
// of tags, "*", or a weak tag (W/"..."), compared weakly as RFC 9110 says for
// If-None-Match.
func MatchETag(ifNoneMatch, etag string) bool {
	for _, part := range strings.Split(ifNoneMatch, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}
