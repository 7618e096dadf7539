package conf

import (
	"strings"
	"testing"
	"time"
)

func TestClientConfigKeys(t *testing.T) {
	withURL := func(u string) string {
		return strings.Replace(base, `cloud: {upstreams: ["127.0.0.1:9002"]}`, `cloud: {upstreams: ["127.0.0.1:9002"], public_url: "`+u+`"}`, 1)
	}
	f := func(name, input, want string) {
		t.Helper()
		_, err := Parse("c.yaml", []byte(input))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: unexpected error: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
	f("https", withURL("https://cloud.example.com"), "")
	f("http with port and path", withURL("http://10.0.0.1:8080/edge"), "")
	f("relative", withURL("cloud.example.com"), "c.yaml:3: regions.cloud.public_url: want an absolute http or https URL")
	f("other scheme", withURL("ftp://cloud.example.com"), "regions.cloud.public_url: want an absolute http or https URL")
	f("no host", withURL("https://"), "regions.cloud.public_url: want an absolute")
	f("credentials", withURL("https://user:secret@cloud.example.com"), "regions.cloud.public_url: must not carry credentials")
	f("query", withURL("https://cloud.example.com/?a=1"), "regions.cloud.public_url: want a base URL without query")
	f("fragment", withURL("https://cloud.example.com/#x"), "regions.cloud.public_url: want a base URL without query")
	f("ttl", base+"client_config: {ttl: 30s}\n", "")
	f("ttl too short", base+"client_config: {ttl: 500ms}\n", "c.yaml:9: client_config.ttl: want whole seconds from 1s to 24h")
	f("ttl fraction", base+"client_config: {ttl: 1500ms}\n", "client_config.ttl: want whole seconds")
	f("ttl too long", base+"client_config: {ttl: 25h}\n", "client_config.ttl: want whole seconds")
	f("ttl not a duration", base+"client_config: {ttl: soon}\n", "client_config.ttl: want a duration")
	f("unknown key", base+"client_config: {tll: 3s}\n", "client_config.tll: unknown key")
}

func TestClientConfigNormalised(t *testing.T) {
	c := mustParse(t, strings.Replace(base, `cloud: {upstreams: ["127.0.0.1:9002"]}`,
		`cloud: {upstreams: ["127.0.0.1:9002"], public_url: "https://cloud.example.com/edge/"}`, 1))
	if r, _ := c.Region("cloud"); r.PublicURL != "https://cloud.example.com/edge" {
		t.Errorf("public_url %q, want it without the trailing slash", r.PublicURL)
	}
	if r, _ := c.Region("idc"); r.PublicURL != "" {
		t.Errorf("idc public_url %q, want none", r.PublicURL)
	}
	if c.ClientConfig.TTL.D != DefaultClientConfigTTL || DefaultClientConfigTTL != time.Minute {
		t.Errorf("ttl %s, want the default of 60s", c.ClientConfig.TTL.D)
	}
}
