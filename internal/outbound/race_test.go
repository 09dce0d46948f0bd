//go:build race

package outbound

// raceEnabled scales down the bursts, which the race detector slows about tenfold.
const raceEnabled = true
