package reader

import "github.com/zcio/zcio/arena"

// EngineArena returns the arena of the engine that reads c, for the
// external conformance tests.
func EngineArena(c *Conn) *arena.Arena { return c.engine().arena() }
