package store

import bolt "go.etcd.io/bbolt"

// CurrentSchemaVersion is the schema version OpenBolt writes.
var CurrentSchemaVersion = len(migrations(nil))

// OpenBoltWithExtraMigrations opens like OpenBolt with extra migrations
// appended to the current ones, to test the migration hook.
func OpenBoltWithExtraMigrations(path string, opts BoltOptions, extra ...func(*bolt.Tx) error) (*Bolt, error) {
	migs := migrations(opts.Sealer)
	for _, m := range extra {
		migs = append(migs, m)
	}
	return openBolt(path, opts, migs)
}
