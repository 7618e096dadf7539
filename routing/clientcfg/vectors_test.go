package clientcfg

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite clients/vectors.json from Vectors()")

// vectorsFile is the committed vectors the SDKs read.
const vectorsFile = "../../clients/vectors.json"

// TestVectorsFile fails when clients/vectors.json is not what Vectors() makes now, so
// a change of the algorithm, the vectors or their format cannot reach the SDKs
// unnoticed. Regenerate with: go generate ./routing/clientcfg
func TestVectorsFile(t *testing.T) {
	want := VectorsJSON()
	if *update {
		if err := os.WriteFile(vectorsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from Vectors(); run go generate ./routing/clientcfg and review the diff", vectorsFile)
	}
}

// TestVectorsConsistent checks the document's own claims, so that it cannot publish a
// vector that contradicts the algorithm it names.
func TestVectorsConsistent(t *testing.T) {
	var d Document
	if err := json.Unmarshal(VectorsJSON(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Algorithm != Algorithm || d.Version != VectorsVersion || d.Format != VectorsFormat {
		t.Fatalf("header: %q %q %q", d.Format, d.Version, d.Algorithm)
	}
	contract := 0
	for _, v := range d.Buckets {
		h := seededSum64(0, v.Salt+"\x00"+v.Key)
		if v.Hash != hex64(h) || v.Bucket != int(h%Buckets) {
			t.Errorf("bucket vector %q/%q: hash %s bucket %d, want %016x %d", v.Salt, v.Key, v.Hash, v.Bucket, h, h%Buckets)
		}
		if v.Group == "contract" {
			contract++
		}
	}
	if contract != 6 {
		t.Errorf("%d contract vectors, want 6", contract)
	}
	for _, v := range d.XXH64 {
		seed, err := strconv.ParseUint(v.Seed, 10, 64)
		if err != nil || hex64(seededSum64(seed, v.Input)) != v.Hash {
			t.Errorf("xxh64 vector %q seed %s: %s", v.Input, v.Seed, v.Hash)
		}
	}
	for _, v := range d.Edges {
		if Bucket(v.Salt, v.Key) != v.Bucket || Threshold(v.Percent) != v.Threshold || v.To != (v.Bucket < v.Threshold) {
			t.Errorf("edge vector %+v is inconsistent", v)
		}
	}
	for _, cv := range d.Configs {
		body, _, err := Marshal(cv.Config)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(body)
		if err != nil {
			t.Errorf("config %s does not parse: %v", cv.Name, err)
			continue
		}
		if len(cv.Cases) == 0 {
			t.Errorf("config %s has no cases", cv.Name)
		}
		for _, tc := range cv.Cases {
			if got := Decide(c, tc.Request); got != tc.Expect {
				t.Errorf("%s / %s: Decide = %+v, the vectors say %+v", cv.Name, tc.Name, got, tc.Expect)
			}
		}
	}
}

// TestVectorsCoverReasons: the config vectors exercise every outcome an SDK can reach
// from a valid config, on both regions, reads and writes, and cutoffs.
func TestVectorsCoverReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, cv := range Vectors().Configs {
		for _, tc := range cv.Cases {
			e := tc.Expect
			seen[string(e.Reason)] = true
			seen["region:"+e.Region] = true
			seen["write:"+strconv.FormatBool(e.Write)] = true
			seen["cutoff:"+strconv.FormatBool(e.Cutoff)] = true
			seen["source:"+e.KeySource] = true
		}
	}
	for _, k := range []string{"split", "rollback", "no_key", "no_route", "region:", "region:idc", "region:cloud",
		"write:true", "write:false", "cutoff:true", "cutoff:false", "source:header:X-User-Id", "source:cookie:uid",
		"source:query:u", "source:ip"} {
		if !seen[k] {
			t.Errorf("no config vector case has %s", k)
		}
	}
}
