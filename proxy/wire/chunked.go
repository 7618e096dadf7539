package wire

import (
	"errors"
	"io"
)

// chunkState is where a chunked decoder stands.
type chunkState uint8

const (
	chunkSize    chunkState = iota // reading a chunk-size line
	chunkData                      // inside a chunk's data
	chunkDataEnd                   // expecting the CRLF after a chunk's data
	chunkTrailer                   // reading trailer lines after the last chunk
)

var errBadChunk = errors.New("upstream sent a malformed chunked body")

// maxChunkLine bounds a chunk-size line (size plus extensions).
const maxChunkLine = 4096

// readChunked decodes a chunked body strictly: hex sizes without sign or prefix, no
// overflow, CRLF line ends, data exactly as long as announced. Trailers are read and
// dropped. Anything else is an error and the connection is not reused.
func (b *upstreamBody[C]) readChunked(p []byte) (int, error) {
	for {
		switch b.chunk {
		case chunkSize:
			line, err := b.line()
			if err != nil {
				return 0, err
			}
			size, ok := parseChunkSize(line)
			if !ok {
				return 0, errBadChunk
			}
			if size == 0 {
				b.chunk = chunkTrailer
				continue
			}
			b.left, b.chunk = size, chunkData
		case chunkData:
			if int64(len(p)) > b.left {
				p = p[:b.left]
			}
			n, err := b.br.Read(p)
			b.left -= int64(n)
			if b.left == 0 {
				b.chunk = chunkDataEnd
			}
			if err == io.EOF {
				return n, io.ErrUnexpectedEOF
			}
			return n, err
		case chunkDataEnd:
			line, err := b.line()
			if err != nil {
				return 0, err
			}
			if len(line) != 0 {
				return 0, errBadChunk
			}
			b.chunk = chunkSize
		case chunkTrailer:
			line, err := b.line()
			if err != nil {
				return 0, err
			}
			if len(line) == 0 {
				b.done = true
				return 0, io.EOF
			}
		}
	}
}

// line reads one CRLF-terminated line without its CRLF. The slice is valid until the
// next read.
func (b *upstreamBody[C]) line() ([]byte, error) {
	line, err := b.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, errBadChunk
	}
	if len(line) > maxChunkLine || len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errBadChunk
	}
	return line[:len(line)-2], nil
}

// parseChunkSize reads a chunk-size line: hex digits, then optional extensions after
// ';' (ignored). It refuses empty sizes, signs, "0x", spaces inside, and sizes over
// 2^40 (no real chunk is that large; the bound keeps arithmetic far from overflow).
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		n = n<<4 | int64(d)
		if n > 1<<40 {
			return 0, false
		}
	}
rest:
	if i == 0 {
		return 0, false
	}
	for ; i < len(line) && (line[i] == ' ' || line[i] == '\t'); i++ {
	}
	if i < len(line) && line[i] != ';' {
		return 0, false
	}
	return n, true
}
