package cluster

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Lead campaigns, under key, to be the cluster's leader, and calls lead
// each time this server wins, with a context that ends when it stops
// leading (its session is lost, or ctx ends). lead starts its work and
// returns; it must stop it when its context ends. Lead returns when ctx
// ends. A leader that dies stops leading ttl after its last keepalive,
// and another server's campaign wins.
func Lead(ctx context.Context, cli *clientv3.Client, key, id string, ttl time.Duration, log *slog.Logger, lead func(ctx context.Context) error) {
	secs := max(int(ttl.Round(time.Second)/time.Second), 1)
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(secs), concurrency.WithContext(ctx))
		if err != nil {
			log.Warn("election session", "err", err)
			pause(ctx, time.Second)
			continue
		}
		e := concurrency.NewElection(sess, key)
		if err := e.Campaign(ctx, id); err != nil {
			sess.Close()
			if ctx.Err() == nil {
				log.Warn("campaign", "err", err)
				pause(ctx, time.Second)
			}
			continue
		}
		log.Info("leading the cluster: controller and scheduler run here", "id", id)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
			case <-lctx.Done():
			}
			cancel()
		}()
		if err := lead(lctx); err != nil {
			log.Error("leader start", "err", err)
		} else {
			<-lctx.Done()
		}
		cancel()
		if ctx.Err() == nil {
			log.Warn("no longer leading; campaigning again")
			resign, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			e.Resign(resign)
			rcancel()
		}
		sess.Close()
	}
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
