package reader_test

import (
	"github.com/zcio/zcio/reader"
)

// A goroutine per connection reads length-prefixed frames in place.
func ExampleListen() {
	ln, err := reader.Listen("tcp", "127.0.0.1:0") // engine: Auto
	if err != nil {
		return
	}
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := c.Reader()
			for {
				n, err := r.ReadUint32BE()
				if err != nil {
					return
				}
				err = r.ReadRange(int(n), func(b []byte) {
					_ = b // a view into the arena, valid only inside this call
				})
				if err != nil {
					return
				}
			}
		}()
	}
}

type echo struct{}

// session is a connection's own state, kept in the Conn (SetValue).
type session struct{ bytes int }

func (echo) OnOpen(c *reader.Conn) { c.SetValue(&session{}) }

func (echo) OnData(c *reader.Conn) {
	s := c.Value().(*session)
	r := c.Reader()
	for n := r.Buffered(); n > 0; n = r.Buffered() {
		_ = r.ReadRange(min(n, r.Limit()), func(b []byte) {
			s.bytes += len(b)
			_, _ = c.Write(b) // never blocks the loop
		})
	}
}

func (echo) OnClose(c *reader.Conn, err error) {}

// Handler mode: callbacks on the engine loops, no goroutine per connection.
func ExampleServe() {
	ln, err := reader.Listen("tcp", "127.0.0.1:0", reader.WithEngine(reader.Fallback))
	if err != nil {
		return
	}
	go func() { _ = reader.Serve(ln, echo{}) }()
	_ = ln.Close()
}
