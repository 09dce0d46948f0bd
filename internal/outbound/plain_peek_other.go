//go:build !unix

package outbound

import "net"

// peeker would tell whether an idle connection can carry another request; without a
// non-blocking peek on this platform it trusts the connection, and a stale one is caught by
// the retry in plainTransport.RoundTrip.
type peeker struct{}

func (p *peeker) init(net.Conn) {}

func (p *peeker) isAlive() bool { return true }

// canPeek: idle connections are not checked before reuse on this platform.
const canPeek = false
