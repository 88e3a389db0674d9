package chart

import (
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrEmpty is returned when there is nothing to draw.
var ErrEmpty = errors.New("bench/chart: no panel has a bar")

// Bar is one contender's figure in a panel.
type Bar struct {
	Label     string
	Value     float64 // median; NaN draws no bar
	Min, Max  float64 // whisker; NaN omits it
	Note      string  // printed after the value, e.g. "1.02x"
	Highlight bool    // the reference contender
	Disturbed bool    // some repetition ran under outside CPU load
	Missing   string  // reason when the contender has no figure
}

// Panel is one measured case.
type Panel struct {
	Title string
	Unit  string
	Bars  []Bar
}

// Layout constants, in SVG user units (pixels).
const (
	width      = 900
	labelW     = 190
	valueW     = 170
	barH       = 18
	barGap     = 6
	panelTitle = 28
	panelGap   = 18
	margin     = 16
	headerH    = 40
)

// WriteSVG writes panels as one SVG document titled title.
func WriteSVG(w io.Writer, title string, panels []Panel) error {
	bars := 0
	for _, p := range panels {
		bars += len(p.Bars)
	}
	if bars == 0 {
		return ErrEmpty
	}
	height := headerH + margin
	for _, p := range panels {
		height += panelHeight(p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="16" font-weight="bold">%s</text>`+"\n", margin, 26, esc(title))
	y := headerH
	for _, p := range panels {
		drawPanel(&b, p, y)
		y += panelHeight(p)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func panelHeight(p Panel) int {
	return panelTitle + len(p.Bars)*(barH+barGap) + panelGap
}

func drawPanel(b *strings.Builder, p Panel, y int) {
	title := p.Title
	if p.Unit != "" {
		title += " (" + p.Unit + ")"
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", margin, y+18, esc(title))
	scale := 0.0
	for _, bar := range p.Bars {
		for _, v := range []float64{bar.Value, bar.Max} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) && v > scale {
				scale = v
			}
		}
	}
	plotX := margin + labelW
	plotW := width - plotX - valueW - margin
	px := func(v float64) float64 {
		if scale <= 0 || math.IsNaN(v) || v < 0 {
			return 0
		}
		return float64(plotW) * v / scale
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`+"\n",
		plotX, y+panelTitle-2, plotX, y+panelTitle+len(p.Bars)*(barH+barGap))
	for i, bar := range p.Bars {
		by := y + panelTitle + i*(barH+barGap)
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", plotX-6, by+barH-5, esc(bar.Label))
		if bar.Missing != "" || math.IsNaN(bar.Value) {
			msg := bar.Missing
			if msg == "" {
				msg = "no result"
			}
			fmt.Fprintf(b, `<text x="%d" y="%d" fill="#888">%s</text>`+"\n", plotX+6, by+barH-5, esc(msg))
			continue
		}
		fill := "#4e79a7"
		if bar.Highlight {
			fill = "#f28e2b"
		}
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", plotX, by, px(bar.Value), barH, fill)
		if !math.IsNaN(bar.Min) && !math.IsNaN(bar.Max) {
			x1, x2 := float64(plotX)+px(bar.Min), float64(plotX)+px(bar.Max)
			mid := float64(by) + barH/2.0
			fmt.Fprintf(b, `<path d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="#222" fill="none"/>`+"\n",
				x1, mid, x2, x1, mid-4, mid+4, x2, mid-4, mid+4)
		}
		text := FormatValue(bar.Value)
		if bar.Note != "" {
			text += "  " + bar.Note
		}
		if bar.Disturbed {
			text += "  (noisy)"
		}
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", plotX+plotW+8, by+barH-5, esc(text))
	}
}

// FormatValue prints v with three significant digits and no exponent for
// ordinary magnitudes.
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func esc(s string) string { return html.EscapeString(s) }
