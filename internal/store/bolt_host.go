package store

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

const bucketHosts = "hosts"

// createHosts adds the hosts bucket (schema version 3):
//
//	hosts
//	└── <name>        : Host
func createHosts(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte(bucketHosts))
	return err
}

// PutHost creates or replaces a host's record.
func (b *Bolt) PutHost(ctx context.Context, h Host) error {
	if err := Required("host name", h.Name); err != nil {
		return err
	}
	return b.write(ctx, HostChangeFor(h.Name), func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket([]byte(bucketHosts)), key(h.Name), h)
	})
}

// GetHost returns a host's record.
func (b *Bolt) GetHost(ctx context.Context, name string) (*Host, error) {
	var h Host
	err := b.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket([]byte(bucketHosts)), key(name), &h)
		if err == nil && !ok {
			err = HostNotFound(name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	h.Alive = b.live.alive(h.Name)
	return &h, nil
}

// ListHosts lists the hosts by name.
func (b *Bolt) ListHosts(ctx context.Context) ([]Host, error) {
	var out []Host
	err := b.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = listJSON[Host](tx.Bucket([]byte(bucketHosts)))
		return err
	})
	for i := range out {
		out[i].Alive = b.live.alive(out[i].Name)
	}
	return out, err
}

// UpdateHost applies f to a host's record atomically.
func (b *Bolt) UpdateHost(ctx context.Context, name string, f func(*Host) error) (*Host, error) {
	var h Host
	err := b.write(ctx, HostChangeFor(name), func(tx *bolt.Tx) error {
		h = Host{}
		bk := tx.Bucket([]byte(bucketHosts))
		ok, err := getJSON(bk, key(name), &h)
		if err != nil {
			return err
		}
		if !ok {
			return HostNotFound(name)
		}
		if err := f(&h); err != nil {
			return err
		}
		return putJSON(bk, key(name), h)
	})
	if err != nil {
		return nil, err
	}
	h.Alive = b.live.alive(h.Name)
	return &h, nil
}

// DeleteHost removes a host's record.
func (b *Bolt) DeleteHost(ctx context.Context, name string) error {
	return b.write(ctx, HostChangeFor(name), func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketHosts))
		if bk.Get([]byte(key(name))) == nil {
			return HostNotFound(name)
		}
		return bk.Delete([]byte(key(name)))
	})
}

// Heartbeat keeps the host alive in this process until ctx ends.
func (b *Bolt) Heartbeat(ctx context.Context, name string, ttl time.Duration) error {
	if err := Required("host name", name); err != nil {
		return err
	}
	return b.live.heartbeat(ctx, name, ttl, func() { b.hub.publish(HostChangeFor(name)) })
}
