//go:build race

package esp

// raceEnabled: sync.Pool drops items at random under the race detector.
const raceEnabled = true
