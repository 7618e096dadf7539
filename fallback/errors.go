package fallback

import "errors"

// ErrMiss reports that no usable cached entry exists for a key: none was stored, it
// outlived the cache's TTL, or it was evicted.
var ErrMiss = errors.New("fallback: no cached entry")

// ErrScript is wrapped by every error of a Lua fallback script: a compile error, a
// runtime error, a result of the wrong shape, a run over its time budget, or no free
// Lua state in time. The wrapping error says which script and why.
var ErrScript = errors.New("fallback: lua script failed")

// ErrCorrupt is wrapped by the errors about persisted cache files that could not be
// read back (bad magic, unknown version, truncation, checksum mismatch). Such files
// are ignored; see [Store.LoadErrors].
var ErrCorrupt = errors.New("fallback: corrupt cache file")
