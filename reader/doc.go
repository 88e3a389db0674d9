// Package reader is zcio's public API: a [Reader] that parses bytes in place,
// in the blocks of an [arena.Arena] they were received into, without copying
// and without allocating per message.
//
// A Reader consumes an ordered queue of segments (bytes [off, off+len) of one
// arena block) that an engine delivers, or that [NewReader] fills from any
// io.Reader (files, TLS, tests) on every OS. Its methods cover what
// bufio.Reader and the usual zero-copy readers give: ReadRange streams views,
// Peek shows n bytes across block boundaries without copying or consuming,
// fixed-size integers and varints, delimiter reads with a length cap, the
// io.Reader, io.ByteScanner and io.WriterTo contracts, and Retain to keep
// views past a callback.
//
// Memory ownership: a view ([]byte or [][]byte handed to a callback) points
// into the arena and is valid only until that callback returns; the [][]byte
// itself is the Reader's scratch space and is reused by the next call. Blocks
// go back to the arena as soon as every byte in them is consumed (after a
// ReadByte that empties a segment, at the next call or the callback's end:
// UnreadByte may still need it). A [Slice]
// from [Reader.Retain] holds its own references and keeps its views valid
// until [Slice.Release], on any goroutine. [Reader.Close] gives back every
// block the Reader holds.
//
// Errors: a method that cannot complete consumes nothing and shows nothing to
// its callback, so a caller can retry, or read what did arrive with a smaller
// request. When the stream ends in the middle of a value the error is
// io.ErrUnexpectedEOF (io.EOF when nothing at all was buffered). The
// exceptions stream by nature: a ReadRange larger than the buffering limit,
// Discard (as bufio's) and WriteTo consume what they got through before the
// error. Closing gives an error matching net.ErrClosed; blocking waits end at
// the deadline (os.ErrDeadlineExceeded) or with the context's error.
//
// Allocation: the read paths allocate nothing once the Reader's scratch
// space has grown to the largest request. Retain allocates (the Slice and
// its views), and so does a call with a context of its own on a Reader made
// WithContext (a derived context).
//
// A Reader is not safe for concurrent use; its callbacks must not call the
// Reader's methods.
package reader
