package chart

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteSVGIsWellFormedAndScaled(t *testing.T) {
	panels := []Panel{{
		Title: "stream size=1KiB conns=64 <&>",
		Unit:  "MB/s",
		Bars: []Bar{
			{Label: "stdlib-reused", Value: 100, Min: 90, Max: 110, Note: "1.00x", Highlight: true},
			{Label: "other", Value: 200, Min: 150, Max: 220, Note: "2.00x", Disturbed: true},
			{Label: "broken", Value: math.NaN(), Min: math.NaN(), Max: math.NaN(), Missing: "build failed"},
		},
	}}
	var buf bytes.Buffer
	require.NoError(t, WriteSVG(&buf, "title", panels))
	dec := xml.NewDecoder(&buf)
	var rects []float64
	texts := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "SVG must be well-formed XML")
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "rect" {
				for _, a := range el.Attr {
					if a.Name.Local == "x" && a.Value != "" {
						for _, a2 := range el.Attr {
							if a2.Name.Local == "width" {
								w, err := strconv.ParseFloat(a2.Value, 64)
								require.NoError(t, err)
								rects = append(rects, w)
							}
						}
					}
				}
			}
		case xml.CharData:
			texts += string(el) + "|"
		}
	}
	require.Len(t, rects, 2, "one bar per contender that has a value")
	assert.InDelta(t, rects[0]*2, rects[1], 0.2, "bars are proportional to their values")
	assert.Contains(t, texts, "build failed")
	assert.Contains(t, texts, "(noisy)")
	assert.Contains(t, texts, "stream size=1KiB conns=64 <&> (MB/s)")
}

func TestWriteSVGEmpty(t *testing.T) {
	err := WriteSVG(io.Discard, "x", []Panel{{Title: "nothing"}})
	assert.ErrorIs(t, err, ErrEmpty)
}

func TestFormatValue(t *testing.T) {
	assert.Equal(t, "1235", FormatValue(1234.6))
	assert.Equal(t, "12.3", FormatValue(12.34))
	assert.Equal(t, "1.23", FormatValue(1.234))
	assert.Equal(t, "0.00123", FormatValue(0.001234))
	assert.Equal(t, "0", FormatValue(0))
	assert.Equal(t, "-", FormatValue(math.NaN()))
}
