package reader

import "github.com/zcio/zcio/internal/segq"

// NewQueueReader exposes newQueueReader to the external tests.
func NewQueueReader(q *segq.Queue, opts ...Option) *Reader {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return newQueueReader(q, &o)
}
