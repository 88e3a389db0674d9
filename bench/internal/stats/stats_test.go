package stats

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSummarizeOdd(t *testing.T) {
	in := []float64{5, 1, 3}
	s := Summarize(in)
	assert.Equal(t, Summary{Median: 3, Min: 1, Max: 5, N: 3}, s)
	assert.Equal(t, []float64{5, 1, 3}, in, "input must not be reordered")
}

func TestSummarizeEvenAndNaN(t *testing.T) {
	s := Summarize([]float64{4, math.NaN(), 1, 2, 10})
	assert.Equal(t, 3.0, s.Median)
	assert.Equal(t, 1.0, s.Min)
	assert.Equal(t, 10.0, s.Max)
	assert.Equal(t, 4, s.N)
}

func TestSummarizeEmpty(t *testing.T) {
	s := Summarize(nil)
	assert.True(t, math.IsNaN(s.Median))
	assert.Zero(t, s.N)
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	assert.Equal(t, 50.0, Percentile(xs, 50))
	assert.Equal(t, 99.0, Percentile(xs, 99))
	assert.Equal(t, 100.0, Percentile(xs, 100))
	assert.Equal(t, 1.0, Percentile(xs, 0))
	assert.Equal(t, 7.0, Percentile([]float64{7}, 99))
	require.True(t, math.IsNaN(Percentile(nil, 50)))
}

func TestRatio(t *testing.T) {
	assert.Equal(t, 2.0, Ratio(4, 2))
	assert.True(t, math.IsNaN(Ratio(1, 0)))
	assert.True(t, math.IsNaN(Ratio(math.NaN(), 1)))
}
