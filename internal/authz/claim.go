package authz

import (
	"context"
	"encoding/json"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// claimGrace is how long a claim whose owner was never written is
// respected: the time between a claim and the write it guards. A claim
// older than that without its owner is what a failed write left, and is
// taken over.
const claimGrace = 30 * time.Second

// A claim holds a unique key (a role name, an assignment's role, principal
// and scope) for its owner, the GUID of the record that has it.
type claimRecord struct {
	Owner string    `json:"owner"`
	At    time.Time `json:"at"`
}

// claim makes owner the holder of (kind, key) and returns "", or returns
// the holder when another record holds it. exists tells whether a holder's
// record is there; a holder without one past claimGrace is replaced.
func (a *Authorizer) claim(ctx context.Context, kind, key, owner string, exists func(ctx context.Context, holder string) (bool, error)) (string, error) {
	value, err := json.Marshal(claimRecord{Owner: owner, At: a.now().UTC()})
	if err != nil {
		return "", err
	}
	for range 3 {
		_, err := a.st.PutObject(ctx, kind, key, value, 0)
		if err == nil {
			return "", nil
		}
		if !errdefs.Is(err, errdefs.ErrConflict) {
			return "", err
		}
		o, err := a.st.GetObject(ctx, kind, key)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return "", err
		}
		var held claimRecord
		if err := json.Unmarshal(o.Value, &held); err != nil {
			return "", err
		}
		if held.Owner == owner {
			return "", nil
		}
		ok, err := exists(ctx, held.Owner)
		if err != nil {
			return "", err
		}
		if ok || a.now().Sub(held.At) < claimGrace {
			return held.Owner, nil
		}
		if _, err := a.st.PutObject(ctx, kind, key, value, o.Revision); err == nil {
			return "", nil
		} else if !errdefs.Is(err, errdefs.ErrConflict) && !errdefs.Is(err, errdefs.ErrNotFound) {
			return "", err
		}
	}
	return "", errdefs.WithCode(errdefs.ErrConflict, "Conflict", "The request conflicted with another one made at the same time. Retry it.")
}

// release drops owner's claim of (kind, key), if it still holds it.
func (a *Authorizer) release(ctx context.Context, kind, key, owner string) error {
	o, err := a.st.GetObject(ctx, kind, key)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var held claimRecord
	if json.Unmarshal(o.Value, &held) != nil || held.Owner != owner {
		return nil
	}
	err = a.st.DeleteObject(ctx, kind, key, o.Revision)
	if errdefs.Is(err, errdefs.ErrNotFound) || errdefs.Is(err, errdefs.ErrConflict) {
		return nil // gone or taken over meanwhile
	}
	return err
}

// objectExists is an exists func for claims whose owner is an object key.
func (a *Authorizer) objectExists(kind string) func(ctx context.Context, key string) (bool, error) {
	return func(ctx context.Context, key string) (bool, error) {
		_, err := a.st.GetObject(ctx, kind, key)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}

// putJSON writes v as the object (kind, key) at rev.
func (a *Authorizer) putJSON(ctx context.Context, kind, key string, v any, rev int64) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = a.st.PutObject(ctx, kind, key, data, rev)
	return err
}
