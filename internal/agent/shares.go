package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/store"
)

// Persistent file shares (azureFile volumes). Before the runtime creates a
// group, each azureFile volume is resolved against the storage records
// (package storage): the account must exist (by name, anywhere in Skiff),
// storageAccountKey must be one of its two current keys, and the share must
// exist. The runtime is then given the share's directory (storage.Share.Dir,
// named by the share's id) in place of the share's name, and no key. If any
// volume does not resolve, the group fails as a failed image pull fails it
// (state Failed, the error, a Warning "Failed" event) and nothing is
// mounted.
//
// A share's data lives on the host that mounted it until the share (or its
// account) is deleted: the server asks every Ready host to RemoveShare, and
// an agent that was down removes, when it starts and every
// ShareSweepInterval, the share directories whose records are gone.

// ShareSweepInterval is how often an agent removes the data of deleted
// shares it missed.
const ShareSweepInterval = 10 * time.Minute

// mountError is an azureFile volume that does not resolve: the group
// fails with it.
type mountError struct{ msg string }

func (e *mountError) Error() string { return e.msg }

// Code is the error's ARM code.
func (e *mountError) Code() string { return runtime.CodeVolumeFailed }

func mountFailed(volume, format string, a ...any) error {
	return &mountError{msg: fmt.Sprintf("Failed to mount Azure File Volume %s: ", volume) + fmt.Sprintf(format, a...)}
}

// resolveShares returns a copy of cg's properties whose azureFile volumes
// name their shares' directories, without keys. A *mountError is the
// group's failure; any other error (the store did not answer) is worth a
// retry.
func (a *Agent) resolveShares(ctx context.Context, cg *store.ContainerGroup) (*api.ContainerGroupProperties, error) {
	props := &api.Clone(&cg.Resource).Properties
	for i := range props.Volumes {
		v := &props.Volumes[i]
		af := v.AzureFile
		if af == nil {
			continue
		}
		if a.cfg.Storage == nil {
			return nil, mountFailed(v.Name, "storage accounts are not available on this host")
		}
		if af.StorageAccountKey == "" {
			return nil, mountFailed(v.Name, "no storageAccountKey is given for storage account '%s'", af.StorageAccountName)
		}
		acct, err := a.cfg.Storage.CheckKey(ctx, af.StorageAccountName, af.StorageAccountKey)
		switch {
		case errors.Is(err, storage.ErrKeyInvalid):
			return nil, mountFailed(v.Name, "the storage account key is not valid for account '%s'", af.StorageAccountName)
		case errdefs.Is(err, errdefs.ErrNotFound):
			return nil, mountFailed(v.Name, "the storage account '%s' does not exist", af.StorageAccountName)
		case err != nil:
			return nil, fmt.Errorf("volume %s: storage account %s: %w", v.Name, af.StorageAccountName, err)
		}
		sh, err := a.cfg.Storage.FindShare(ctx, acct, af.ShareName)
		switch {
		case errdefs.Is(err, errdefs.ErrNotFound):
			return nil, mountFailed(v.Name, "the file share '%s' does not exist in storage account '%s'", af.ShareName, acct.Name)
		case err != nil:
			return nil, fmt.Errorf("volume %s: file share %s: %w", v.Name, af.ShareName, err)
		}
		v.AzureFile = &api.AzureFileVolume{StorageAccountName: acct.Name, ShareName: sh.Dir(), ReadOnly: af.ReadOnly}
	}
	return props, nil
}

// failedObserved is what a group that cannot be created is observed as:
// Failed with err, and a Warning event saying why, as the runtime reports
// a failed pull.
func failedObserved(err error, def string) store.Observed {
	now := time.Now().UTC().Format(time.RFC3339)
	obs := store.Observed{State: string(lifecycle.GroupFailed), Error: errorBody(err, def)}
	var me *mountError
	if errors.As(err, &me) {
		obs.Error.Code = me.Code()
		obs.Events = []api.Event{{Count: 1, FirstTimestamp: now, LastTimestamp: now, Name: "Failed", Message: me.msg, Type: api.EventWarning}}
	}
	return obs
}

// sweepShares removes the share directories of this host whose share
// records are gone (deleted while the host was down or did not answer).
// The directories are listed before the records: a share's record is
// written before its directory is, so a share being created is never
// taken for a deleted one. Directories not named as storage.Share.Dir
// names them (a Skiff before storage accounts made them) are left alone.
func (a *Agent) sweepShares(ctx context.Context) {
	if a.cfg.Storage == nil || a.rt == nil || a.rt.Volumes == nil {
		return
	}
	dirs, err := a.rt.Volumes.ShareDirs()
	if err != nil {
		a.log.Warn("list share directories", "err", err)
		return
	}
	if len(dirs) == 0 {
		return
	}
	shares, err := a.cfg.Storage.Shares(ctx)
	if err != nil {
		a.log.Warn("list file shares", "err", err)
		return
	}
	live := map[[2]string]bool{}
	for _, sh := range shares {
		live[[2]string{sh.Account, sh.Dir()}] = true
	}
	for _, d := range dirs {
		if _, _, ok := storage.ParseDir(d.Dir); !ok || !api.StorageAccountNameOK(d.Account) || live[[2]string{d.Account, d.Dir}] {
			continue
		}
		a.log.Info("removing the data of a deleted file share", "account", d.Account, "share", d.Dir)
		if err := a.rt.Volumes.RemoveShare(d.Account, d.Dir); err != nil {
			a.log.Warn("remove file share", "account", d.Account, "share", d.Dir, "err", err)
		}
	}
}

// sweepSharesEvery sweeps until ctx ends.
func (a *Agent) sweepSharesEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sweepShares(ctx)
		}
	}
}
