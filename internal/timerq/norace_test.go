//go:build !race

package timerq

const raceEnabled = false
