package clientcfg

import (
	"reflect"
	"testing"
)

// FuzzParse: any bytes from the network either fail to parse or give a config that
// Decide handles and that survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(`{"algorithm":"xxh64-salt0-mod10000","routes":[{"name":"r","from":"a","to":"b","keys":["ip"],"percent":0.01}]}`))
	f.Add([]byte(`{"algorithm":"xxh64-salt0-mod10000","routes":[{"name":"r","match":{"host":"H","path_prefix":""},"from":"a","to":"b","percent":1e2}]}`))
	f.Add([]byte(`{"routes":null,"regions":{"a":null}}`))
	for _, v := range invalidConfigs() {
		f.Add([]byte(v.Config))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		for _, r := range []Request{
			{},
			{Method: "POST", Host: "h:1", Path: "/a", Headers: hdr("x", "1"), Cookies: hdr("uid", "2"), Query: hdr("u", "3"), IP: "::1"},
			{Method: "GET", Path: string(data), IP: string(data)},
		} {
			d := Decide(c, r)
			if d.Bucket < -1 || d.Bucket >= Buckets || (d.Region != "" && d.Route == "") {
				t.Fatalf("Decide(%+v) = %+v", r, d)
			}
		}
		body, _, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(body)
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\n%s", err, body)
		}
		// Marshal writes [] and {} where the input may have had null.
		normalize := func(c *Config) {
			if c.Regions == nil {
				c.Regions = map[string]Region{}
			}
			if c.Routes == nil {
				c.Routes = []Route{}
			}
			for i := range c.Routes {
				if c.Routes[i].Keys == nil {
					c.Routes[i].Keys = []string{}
				}
			}
		}
		normalize(c)
		normalize(back)
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}
