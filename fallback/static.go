package fallback

// Static is a fixed fallback response, configured per route and served when no cached
// entry exists. It is a plain value: the proxy reads it from the compiled config and
// must not modify Body, which may be shared by every request of the route.
//
// The zero Static has Status 0, which the proxy treats as "no static fallback".
type Static struct {
	// Status is the HTTP status code to answer with, for example 200.
	Status int
	// ContentType is the Content-Type header value; empty means none is sent.
	ContentType string
	// Body is the response body, read once when the config is compiled.
	Body []byte
}
