//go:build !race

package ike

const raceEnabled = false
