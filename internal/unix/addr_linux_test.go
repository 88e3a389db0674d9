package unix

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	linux "golang.org/x/sys/unix"
)

// An IPv6 address's zone is its interface's name, or, where no interface has
// that index, the index in decimal, as net writes it; no zone, no Zone.
func TestToAddrIPv6Zone(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	require.NoError(t, err, "loopback interface")
	ip := [16]byte{0: 0xfe, 1: 0x80, 15: 1}
	for _, tc := range []struct {
		zone uint32
		want string
	}{
		{0, ""},
		{uint32(lo.Index), "lo"},
		{1 << 30, strconv.Itoa(1 << 30)}, // no such interface
	} {
		a, err := toAddr(&linux.SockaddrInet6{Port: 9, ZoneId: tc.zone, Addr: ip})
		require.NoError(t, err)
		ta, ok := a.(*net.TCPAddr)
		require.True(t, ok, "%T", a)
		assert.Equal(t, tc.want, ta.Zone, "zone id %d", tc.zone)
		assert.Equal(t, 9, ta.Port)
		assert.True(t, ta.IP.Equal(net.IP(ip[:])))
	}
}
