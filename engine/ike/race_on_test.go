//go:build race

package ike

// raceEnabled: the race detector changes escape analysis, so allocation
// counts differ.
const raceEnabled = true
