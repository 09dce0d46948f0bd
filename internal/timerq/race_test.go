//go:build race

package timerq

// raceEnabled scales down the largest tests, which the race detector slows ~10x.
const raceEnabled = true
