//go:build race

package proxy

// raceDetector is whether the race detector is on: it makes the
// simulated-clock outage ten times as slow, so that test runs fewer
// clients under it.
const raceDetector = true
