package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a running gateway's admin API, as the CLI does. It is safe for
// concurrent use.
type Client struct {
	// Base is the admin API's URL, such as http://127.0.0.1:9090.
	Base string
	// Token is the bearer token ("" for none).
	Token string
	// HTTP is the client used; nil means one with a 10 s timeout.
	HTTP *http.Client
}

// APIError is a failed call: the HTTP status and the API's error body.
type APIError struct {
	Status int
	ErrorBody
}

func (e *APIError) Error() string { return e.ErrorBody.Error }

// NewClient checks base and returns a client for it.
func NewClient(base, token string) (*Client, error) {
	if base == "" {
		base = "http://127.0.0.1:9090"
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-admin: want a URL such as http://127.0.0.1:9090, got %q", base)
	}
	return &Client{Base: strings.TrimSuffix(base, "/"), Token: token, HTTP: &http.Client{Timeout: 10 * time.Second}}, nil
}

// Do sends body (JSON, when not nil) to method path and decodes a 2xx answer into out
// (when not nil). A non-2xx answer is an *APIError.
func (c *Client) Do(method, path string, body any, out any) error {
	return c.DoContext(context.Background(), method, path, body, out)
}

// DoContext is Do bounded by ctx.
func (c *Client) DoContext(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.Base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, &e.ErrorBody) != nil || e.ErrorBody.Error == "" {
			e.ErrorBody.Error = "admin API: " + resp.Status
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return errors.Join(fmt.Errorf("admin API answer: %w", err))
		}
	}
	return nil
}
