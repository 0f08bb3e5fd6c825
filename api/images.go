package api

// PullEvent is one line of the streamed image pull (a Skiff extension:
// POST …/locations/{loc}/images/pull?progress=true answers NDJSON): a
// layer's progress, a back-off, the result or an error.
type PullEvent struct {
	Layer    string     `json:"layer,omitempty"`
	Status   string     `json:"status,omitempty"`
	Complete int64      `json:"complete,omitempty"`
	Total    int64      `json:"total,omitempty"`
	Attempt  int        `json:"attempt,omitempty"`
	Delay    string     `json:"delay,omitempty"`
	Message  string     `json:"message,omitempty"`
	Image    string     `json:"image,omitempty"`
	Digest   string     `json:"digest,omitempty"`
	Error    *ErrorBody `json:"error,omitempty"`
}
