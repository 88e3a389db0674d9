// Package chart draws benchmark summaries as a self-contained SVG: one panel
// per measured case, one horizontal bar per contender (the median) with a
// whisker from the minimum to the maximum repetition. It uses no library.
package chart
