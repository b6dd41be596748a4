//go:build race

package transform

// raceEnabled: the race detector changes escape analysis, so allocation
// counts differ.
const raceEnabled = true
