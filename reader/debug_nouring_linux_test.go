//go:build linux && zcio_nouring

package reader

func engineDebug(engine) string { return "(fallback)" }
