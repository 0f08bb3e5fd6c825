package runtime

import "time"

// Backoff is the crash-loop back-off of restarted containers: the delay
// starts at Initial, doubles up to Max, and returns to Initial once a run
// has lasted ResetAfter.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

// DefaultBackoff is the kubelet's and ACI's: 10 s doubling to 5 min, reset
// after 10 min of running.
var DefaultBackoff = Backoff{Initial: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute}

// next returns the delay before the next start given the previous delay
// (0 if none) and how long the last run lasted.
func (b Backoff) next(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= b.ResetAfter {
		return b.Initial
	}
	d := prev * 2
	if d > b.Max {
		d = b.Max
	}
	return d
}
