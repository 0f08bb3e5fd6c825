package etcdstore

import (
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRecentBounded: what a store keeps of recent records stays within
// its count and byte bounds, and a delete forgets the record.
func TestRecentBounded(t *testing.T) {
	var r recent
	kv := func(v string) *mvccpb.KeyValue { return &mvccpb.KeyValue{Value: []byte(v), ModRevision: 7} }
	for i := range recentMax + 100 {
		r.saw([]string{"k" + strconv.Itoa(i)}, []*mvccpb.KeyValue{kv("small")})
	}
	if len(r.kvs) != recentMax {
		t.Fatalf("%d records kept, want at most %d", len(r.kvs), recentMax)
	}
	big := strings.Repeat("x", recentMaxBytes/20)
	for i := range 40 {
		r.saw([]string{"big" + strconv.Itoa(i)}, []*mvccpb.KeyValue{kv(big)})
	}
	if r.bytes > recentMaxBytes {
		t.Fatalf("%d bytes kept, want at most %d", r.bytes, recentMaxBytes)
	}
	r.saw([]string{"huge"}, []*mvccpb.KeyValue{kv(strings.Repeat("x", recentMaxBytes/8))})
	if got := r.get([]string{"huge"}); got[0] != nil {
		t.Fatal("a record over a 16th of the bytes bound was kept")
	}

	r.wrote([]clientv3.Op{clientv3.OpPut("w", "v1")}, 42)
	if got := r.get([]string{"w"})[0]; got == nil || string(got.Value) != "v1" || got.ModRevision != 42 {
		t.Fatalf("after a put recent has %+v, want v1 at revision 42", got)
	}
	r.wrote([]clientv3.Op{clientv3.OpDelete("w")}, 43)
	if got := r.get([]string{"w"})[0]; got != nil {
		t.Fatalf("after a delete recent still has %+v", got)
	}
	sum := 0
	for _, kv := range r.kvs {
		sum += len(kv.Value)
	}
	if sum != r.bytes {
		t.Fatalf("recent counts %d bytes, holds %d", r.bytes, sum)
	}
}
