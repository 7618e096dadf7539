package fallback

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"time"
)

// The cache file format, version 1. Integers are varints (encoding/binary); strings
// and byte slices are a uvarint length and the bytes.
//
//	"SGFB" version(1 byte)
//	route  written(varint unix ns)  count(uvarint)
//	count × { key  stored(varint unix ns)  status(uvarint)
//	          headers(uvarint n, n × {name value})  body }
//	crc32-Castagnoli of all the above (4 bytes, little endian)
//
// The checksum makes a torn or bit-flipped file an error instead of wrong data.
const (
	fileMagic   = "SGFB"
	fileVersion = 1
	fileExt     = ".fallback"
	// maxFileSize refuses to read absurd files into memory.
	maxFileSize = 1 << 30
	// maxHeaders bounds one entry's header count in a file.
	maxHeaders = 1024
	// minEntryBytes is the smallest encoded entry, to bound count by the file size.
	minEntryBytes = 5
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// fileName returns the file that persists route's cache: bytes outside
// [A-Za-z0-9_-] are %XX-escaped so any route name is a safe single file name.
func fileName(route string) string {
	var b strings.Builder
	for i := 0; i < len(route); i++ {
		ch := route[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '-' {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String() + fileExt
}

// encodeCache writes route's entries to w in the cache file format.
func encodeCache(w io.Writer, route string, written time.Time, entries []keyedEntry) error {
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var tmp [binary.MaxVarintLen64]byte
	uvarint := func(v uint64) { bw.Write(tmp[:binary.PutUvarint(tmp[:], v)]) }
	varint := func(v int64) { bw.Write(tmp[:binary.PutVarint(tmp[:], v)]) }
	str := func(s string) { uvarint(uint64(len(s))); bw.WriteString(s) }

	bw.WriteString(fileMagic)
	bw.WriteByte(fileVersion)
	str(route)
	varint(written.UnixNano())
	uvarint(uint64(len(entries)))
	for _, ke := range entries {
		e := ke.e
		str(ke.key)
		varint(e.Stored.UnixNano())
		uvarint(uint64(e.Status))
		uvarint(uint64(len(e.Header)))
		for _, h := range e.Header {
			str(h[0])
			str(h[1])
		}
		uvarint(uint64(len(e.Body)))
		bw.Write(e.Body)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	_, err := w.Write(sum[:])
	return err
}

// decoder reads the cache file format from a byte slice, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed field, aliasing the input.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// decodeCache parses a cache file. Entries do not alias data.
func decodeCache(data []byte) (route string, entries []keyedEntry, err error) {
	if len(data) < len(fileMagic)+1+4 || string(data[:len(fileMagic)]) != fileMagic {
		return "", nil, fmt.Errorf("%w: not a cache file", ErrCorrupt)
	}
	if v := data[len(fileMagic)]; v != fileVersion {
		return "", nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, v)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return "", nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := &decoder{b: body[len(fileMagic)+1:]}
	route = string(d.bytes("route"))
	d.varint("write time")
	count := d.uvarint("entry count")
	if d.err == nil && count > uint64(len(d.b)/minEntryBytes) {
		d.fail("entry count")
	}
	if d.err != nil {
		return "", nil, d.err
	}
	entries = make([]keyedEntry, 0, count)
	for i := uint64(0); i < count && d.err == nil; i++ {
		key := string(d.bytes("key"))
		e := &Entry{Stored: time.Unix(0, d.varint("stored time"))}
		status := d.uvarint("status")
		if d.err == nil && (status < 100 || status > 599) {
			d.fail("status")
		}
		e.Status = int(status)
		nh := d.uvarint("header count")
		if d.err == nil && (nh > maxHeaders || nh > uint64(len(d.b)/2)) {
			d.fail("header count")
		}
		if nh > 0 && d.err == nil {
			e.Header = make([][2]string, nh)
			for j := range e.Header {
				e.Header[j] = [2]string{string(d.bytes("header name")), string(d.bytes("header value"))}
			}
		}
		e.Body = append([]byte(nil), d.bytes("body")...)
		entries = append(entries, keyedEntry{key, e})
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing data")
	}
	if d.err != nil {
		return "", nil, d.err
	}
	return route, entries, nil
}
