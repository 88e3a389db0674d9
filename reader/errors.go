package reader

import (
	"errors"
	"fmt"
	"net"
)

// Errors returned by this package; match them with errors.Is.
var (
	// ErrClosed is returned by every method after Close. It matches
	// net.ErrClosed.
	ErrClosed = fmt.Errorf("zcio/reader: reader closed: %w", net.ErrClosed)
	// ErrTooLarge is returned when a request needs more bytes buffered at
	// once than the Reader's limit (see WithLimit). Nothing was consumed.
	ErrTooLarge = errors.New("zcio/reader: request larger than the buffering limit")
	// ErrNoBlocks is returned when the arena had no free block to read
	// into (other holders keep them). Nothing was consumed.
	ErrNoBlocks = errors.New("zcio/reader: arena has no free block")
	// ErrLineTooLong is returned by ReadSlice and ReadLine when no delimiter
	// comes within the maximum line length (see WithMaxLine). Nothing was
	// consumed; Discard skips the line.
	ErrLineTooLong = errors.New("zcio/reader: line too long")
	// ErrWouldBlock is returned in non-blocking mode (handler mode) by a call
	// that would have to wait for data. Nothing was consumed.
	ErrWouldBlock = errors.New("zcio/reader: operation would block")
	// ErrInvalidUnreadByte is returned by UnreadByte when the last call was
	// not a successful ReadByte.
	ErrInvalidUnreadByte = errors.New("zcio/reader: invalid use of UnreadByte")
	// ErrVarintOverflow is returned when a varint does not fit in 64 bits.
	// Nothing was consumed.
	ErrVarintOverflow = errors.New("zcio/reader: varint overflows a 64-bit integer")
	// ErrOutsideCallback is returned by the Reader (and Read) of a
	// handler-mode connection used outside the connection's own callbacks:
	// a handler-mode Reader is lent to the connection only while one of its
	// callbacks runs.
	ErrOutsideCallback = errors.New("zcio/reader: handler-mode Reader used outside the connection's callbacks")
	// ErrHandlerClose is returned by Close on the Reader of a handler-mode
	// connection, which belongs to the connection: Conn.Close ends it.
	// Nothing was closed.
	ErrHandlerClose = errors.New("zcio/reader: a handler-mode connection's Reader is closed by its Conn's Close")
	// ErrInvalidConfig is wrapped by the errors of options, arguments and
	// settings that cannot work: a block size out of range, a memory budget
	// too small for its engines, an unknown engine or ZCIO_ENGINE value, a
	// nil Listener or Handler.
	ErrInvalidConfig = errors.New("zcio/reader: invalid configuration")
	// ErrNegativeCount is returned when a byte count is negative.
	ErrNegativeCount = errors.New("zcio/reader: negative count")
	// ErrReentrant is returned by a Reader method called from inside one
	// of the same Reader's callbacks (ReadRange's yield, the fn of Peek,
	// ReadSlice and ReadLine, WriteTo's writer), which would move the bytes
	// the callback is looking at, or, for an engine connection's Reader,
	// while another goroutine's call is in progress. Nothing was consumed.
	// Close is the exception: called from a callback, it closes the Reader
	// as the call that runs the callback returns.
	ErrReentrant = errors.New("zcio/reader: Reader method called from inside one of its callbacks, or from two goroutines at once")

	// ErrInvalidCount is returned when an io.Reader (NewReader's source) or
	// an io.Writer (WriteTo's) reports a negative count, or more bytes than
	// it was given. The bytes before that call stay as they were: read
	// bytes stay readable, written ones are consumed.
	ErrInvalidCount = errors.New("zcio/reader: io.Reader or io.Writer returned an invalid count")
)
