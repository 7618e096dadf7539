package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadAdmin reads only what an admin client needs from a config file: the admin
// listener's address (default DefaultAdminListen) and its token (from token_file,
// relative to the file's directory). The CLI's admin verbs use it instead of
// LoadFile so that they still reach a running gateway when something else the file
// names does not load: a renewed certificate with the wrong key, a half-written CA
// bundle, a percent the gateway refused. The gateway keeps serving the last good
// config then, and the operator's rollback must not depend on the file being fixed.
func LoadAdmin(path string) (Admin, error) {
	data, err := ReadFile(path)
	if err != nil {
		return Admin{}, err
	}
	return parseAdmin(path, data)
}

// parseAdmin is LoadAdmin on a file's bytes; path locates the token file.
func parseAdmin(path string, data []byte) (Admin, error) {
	if len(data) > MaxFileBytes {
		return Admin{}, Errors{{File: path, Msg: fmt.Sprintf("%d bytes: larger than %d bytes (1 MiB)", len(data), MaxFileBytes)}}
	}
	p := &parser{file: path}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Admin{}, Errors{p.yamlError(err, nil)}
	}
	if e := checkNodeCount(path, &root, MaxNodes); e != nil {
		return Admin{}, Errors{e}
	}
	var a Admin
	if len(root.Content) > 0 && root.Content[0].Kind == yaml.MappingNode {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value != "admin" {
				continue
			}
			if err := m.Content[i+1].Decode(&a); err != nil {
				return Admin{}, Errors{p.yamlError(err, nil)}
			}
			if a.TokenFile != "" {
				tf := a.TokenFile
				if !filepath.IsAbs(tf) {
					tf = filepath.Join(filepath.Dir(path), tf)
				}
				b, err := os.ReadFile(tf)
				if err != nil {
					return Admin{}, Errors{{File: path, Line: m.Content[i].Line, Path: "admin.token_file", Msg: err.Error()}}
				}
				a.Token = strings.TrimSpace(string(b))
			}
		}
	}
	if a.Listen == "" {
		a.Listen = DefaultAdminListen
	}
	return a, nil
}
