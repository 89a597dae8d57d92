package snapshot

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Stored blob format: one header byte, then the payload.
const (
	blobRaw  byte = 0 // payload is the plain contents
	blobZstd byte = 1 // payload is one zstd frame of the plain contents
)

// maxBlobSize bounds a decoded blob: the largest chunk is maxChunk; trees are
// JSON and stay far below this for any real directory.
const maxBlobSize = 64 << 20

// ErrCorrupt marks a blob whose stored bytes do not decode or do not hash to
// its ID.
var ErrCorrupt = errors.New("corrupt blob")

var (
	zenc, _ = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true))
	zdec, _ = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxBlobSize))
)

// encodeBlob returns the stored form of plain: zstd-compressed when that is
// smaller, raw otherwise (random or already compressed data).
func encodeBlob(plain []byte) []byte {
	out := make([]byte, 1, len(plain)/2+64)
	out[0] = blobZstd
	out = zenc.EncodeAll(plain, out)
	if len(out) >= len(plain)+1 {
		out = append(out[:0], blobRaw)
		out = append(out, plain...)
	}
	return out
}

// decodeBlob returns the plain contents of a stored blob and checks that they
// hash to id. Errors wrap ErrCorrupt.
func decodeBlob(id ID, stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, fmt.Errorf("blob %s: empty: %w", id.Short(), ErrCorrupt)
	}
	var plain []byte
	switch stored[0] {
	case blobRaw:
		plain = stored[1:]
	case blobZstd:
		var err error
		plain, err = zdec.DecodeAll(stored[1:], nil)
		if err != nil {
			return nil, fmt.Errorf("blob %s: decompress: %v: %w", id.Short(), err, ErrCorrupt)
		}
	default:
		return nil, fmt.Errorf("blob %s: unknown format %d: %w", id.Short(), stored[0], ErrCorrupt)
	}
	if Hash(plain) != id {
		return nil, fmt.Errorf("blob %s: contents do not match the hash: %w", id.Short(), ErrCorrupt)
	}
	return plain, nil
}
