// Package fallback answers for a route when every region has failed, so that users
// see slightly stale data instead of an error page.
//
// The proxy tries, in order: the cached last good response for the route and its
// cache key ([Cache], kept across restarts by a [Store]), a fixed body ([Static]),
// a Lua script ([Script]), and finally a clear error status of its own.
//
// The package knows nothing of HTTP servers or of the other shiftgate packages: the
// proxy builds cache keys, decides which responses are cacheable and which headers
// to keep, and maps the sentinel errors ([ErrMiss], [ErrScript]) to a status.
package fallback
