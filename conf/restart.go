package conf

import (
	"fmt"
	"strings"
)

// KeyChange is a config key whose value in a reloaded file differs from the one the
// running process uses.
type KeyChange struct {
	Key     string `json:"key"`
	Running string `json:"running"`
	File    string `json:"file"`
}

func (k KeyChange) String() string {
	return fmt.Sprintf("%s (running %s, file %s)", k.Key, k.Running, k.File)
}

// readAtStart are the keys a running gateway reads only when it starts: its
// listeners, its override store, and what the client-facing HTTP server is built with.
// A reload takes every other key.
var readAtStart = []struct {
	key   string
	value func(*Config) string
}{
	{"listen", func(c *Config) string { return c.Listen }},
	{"admin.listen", func(c *Config) string { return c.Admin.Listen }},
	{"tls.listen", func(c *Config) string {
		if c.TLS == nil {
			return "none"
		}
		return c.TLS.Listen
	}},
	{"state_dir", func(c *Config) string { return c.StateDir }},
	{"fleet.etcd", func(c *Config) string {
		e := c.Fleet.Etcd
		if e == nil {
			return "none"
		}
		return fmt.Sprintf("endpoints %s, prefix %q", strings.Join(e.Endpoints, ","), e.Prefix)
	}},
	{"timeouts.request_head", func(c *Config) string { return c.Timeouts.RequestHead.D.String() }},
	{"timeouts.idle", func(c *Config) string { return c.Timeouts.Idle.D.String() }},
	{"timeouts.park_idle", func(c *Config) string {
		if c.Timeouts.ParkIdle.Off {
			return "off"
		}
		return c.Timeouts.ParkIdle.D.String()
	}},
	{"limits.max_header_bytes", func(c *Config) string { return fmt.Sprint(c.Limits.MaxHeaderBytes.N) }},
	{"limits.max_conns", func(c *Config) string { return fmt.Sprint(c.Limits.MaxConns) }},
}

// ReadAtStart lists the keys that next sets differently from running, the config a
// gateway started with, and that it reads only at start: a reload of next leaves them
// as they are until a restart.
func ReadAtStart(running, next *Config) []KeyChange {
	var out []KeyChange
	for _, k := range readAtStart {
		if r, f := k.value(running), k.value(next); r != f {
			out = append(out, KeyChange{Key: k.key, Running: r, File: f})
		}
	}
	return out
}
