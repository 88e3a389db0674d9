package proto

import "encoding/binary"

// HelloSize is the size of the hello that opens every fan-out connection: a
// role byte followed by a big-endian uint32 stream id.
const HelloSize = 5

// Roles in the fan-out scenario.
const (
	RolePublisher  = 'P'
	RoleSubscriber = 'S'
)

// AppendHello appends a fan-out hello to dst.
func AppendHello(dst []byte, role byte, stream uint32) []byte {
	dst = append(dst, role)
	return binary.BigEndian.AppendUint32(dst, stream)
}

// ParseHello decodes a hello from its HelloSize bytes.
func ParseHello(b []byte) (role byte, stream uint32) {
	return b[0], binary.BigEndian.Uint32(b[1:HelloSize])
}
