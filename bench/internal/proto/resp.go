package proto

import "strconv"

// Requests and responses of the pipelined request/response scenario. They
// follow RESP (the Redis protocol): a request is an array of bulk strings.
var (
	PingRequest  = []byte("*1\r\n$4\r\nPING\r\n")
	GetRequest   = []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
	PongResponse = []byte("+PONG\r\n")
	GetValue     = []byte("0123456789abcdef")
	GetResponse  = []byte("$" + strconv.Itoa(len(GetValue)) + "\r\n" + string(GetValue) + "\r\n")
	ErrResponse  = []byte("-ERR unknown command\r\n")
	ProtoError   = []byte("-ERR protocol\r\n")
)

const (
	stArray = iota // expecting '*'
	stArrayLen
	stArrayLF
	stBulk // expecting '$'
	stBulkLen
	stBulkLF
	stData
	stDataCR
	stDataLF
	stBroken
)

// RESPServer decodes pipelined RESP requests delivered in chunks of any size
// and appends one response per complete request. The zero value is ready to
// use; it never retains a chunk and never allocates once out has capacity.
type RESPServer struct {
	state int
	n     int // number being parsed
	args  int // bulk strings left in the current array
	argi  int // index of the current bulk string
	rem   int // payload bytes left in the current bulk string
	cmd   [8]byte
	cmdN  int
	Reqs  uint64 // complete requests so far
}

// Feed consumes b, appends the responses it completes to out and returns out.
func (p *RESPServer) Feed(b []byte, out []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch p.state {
		case stArray:
			p.expect(c, '*', stArrayLen)
		case stArrayLen:
			p.number(c, stArrayLF)
		case stArrayLF:
			if !p.lf(c) {
				break
			}
			p.args, p.argi, p.cmdN = p.n, 0, 0
			p.state = stBulk
			if p.args <= 0 {
				p.state = stArray
			}
		case stBulk:
			p.expect(c, '$', stBulkLen)
		case stBulkLen:
			p.number(c, stBulkLF)
		case stBulkLF:
			if p.lf(c) {
				p.rem = p.n
				p.state = stData
				if p.rem == 0 {
					p.state = stDataCR
				}
			}
		case stData:
			k := min(p.rem, len(b)-i)
			if p.argi == 0 {
				for _, ch := range b[i : i+k] {
					if p.cmdN < len(p.cmd) {
						p.cmd[p.cmdN] = ch | 0x20
						p.cmdN++
					}
				}
			}
			p.rem -= k
			i += k - 1
			if p.rem == 0 {
				p.state = stDataCR
			}
		case stDataCR:
			p.expect(c, '\r', stDataLF)
		case stDataLF:
			if !p.lf(c) {
				break
			}
			p.argi++
			p.state = stBulk
			if p.argi == p.args {
				out = p.respond(out)
				p.state = stArray
			}
		case stBroken:
			return out
		}
		if p.state == stBroken {
			return append(out, ProtoError...)
		}
	}
	return out
}

// Broken reports whether the stream violated the protocol (the server should
// close the connection).
func (p *RESPServer) Broken() bool { return p.state == stBroken }

func (p *RESPServer) respond(out []byte) []byte {
	p.Reqs++
	switch string(p.cmd[:p.cmdN]) {
	case "ping":
		return append(out, PongResponse...)
	case "get":
		return append(out, GetResponse...)
	}
	return append(out, ErrResponse...)
}

func (p *RESPServer) expect(c, want byte, next int) {
	if c != want {
		p.state = stBroken
		return
	}
	p.n = 0
	p.state = next
}

func (p *RESPServer) number(c byte, next int) {
	switch {
	case c >= '0' && c <= '9' && p.n < 1<<24:
		p.n = p.n*10 + int(c-'0')
	case c == '\r':
		p.state = next
	default:
		p.state = stBroken
	}
}

func (p *RESPServer) lf(c byte) bool {
	if c != '\n' {
		p.state = stBroken
		return false
	}
	return true
}
