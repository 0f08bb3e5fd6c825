package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Share is a file share of an account.
type Share struct {
	Account    string `json:"account"`
	AccountUID string `json:"accountUid"`
	Name       string `json:"name"`
	// ID is the share's own random id: a share created again under the
	// same name has another, and so another directory (Dir).
	ID         string            `json:"id"`
	Quota      int               `json:"quota"`
	Protocols  string            `json:"enabledProtocols"`
	AccessTier string            `json:"accessTier"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
	ModifiedAt time.Time         `json:"modifiedAt"`

	revision int64
}

// Dir is the name of the directory that holds the share's data on a host,
// below the account's: "<share>.<id>" (a share name has no '.').
func (sh *Share) Dir() string { return sh.Name + "." + sh.ID }

// ParseDir splits a directory name made by Dir into the share's name and
// id; ok is false for any other name.
func ParseDir(dir string) (name, id string, ok bool) {
	name, id, ok = strings.Cut(dir, ".")
	if !ok || api.ValidateFileShareName(name) != nil || len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", "", false
	}
	return name, id, true
}

// ShareSpec is what a PUT of a share asks for (validated, with the
// defaults filled: api.ValidateFileShare).
type ShareSpec struct {
	Name       string
	Quota      int
	Protocols  string
	AccessTier string
	Metadata   map[string]string
}

func shareKey(account, share string) string { return account + "/" + share }

// shareRecords lists the share records of an account (all of them, stale
// ones included: see the package comment), or the one named share.
func (s *Service) shareRecords(ctx context.Context, account, share string) ([]Share, error) {
	objs, err := s.st.ListObjects(ctx, kindShares, account+"/"+share)
	if err != nil {
		return nil, err
	}
	out := []Share{}
	for _, o := range objs {
		var sh Share
		if err := json.Unmarshal(o.Value, &sh); err != nil {
			return nil, fmt.Errorf("file share %s: a damaged record: %w", o.Key, err)
		}
		if share != "" && sh.Name != share {
			continue
		}
		sh.revision = o.Revision
		out = append(out, sh)
	}
	return out, nil
}

// getShare reads the share of the account record r (ShareNotFound if
// there is none, or only a stale one).
func (s *Service) getShare(ctx context.Context, r *accountRecord, name string) (*Share, error) {
	if api.ValidateFileShareName(name) != nil {
		return nil, ShareNotFound(r.Name, name)
	}
	o, err := s.st.GetObject(ctx, kindShares, shareKey(r.Name, name))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, ShareNotFound(r.Name, name)
	}
	if err != nil {
		return nil, err
	}
	var sh Share
	if err := json.Unmarshal(o.Value, &sh); err != nil {
		return nil, fmt.Errorf("file share %s: a damaged record: %w", o.Key, err)
	}
	sh.revision = o.Revision
	if sh.AccountUID != r.UID {
		return &sh, errStale
	}
	return &sh, nil
}

var errStale = fmt.Errorf("a share of a deleted namesake account: %w", errdefs.ErrNotFound)

// CreateOrUpdateShare creates a share of the account name of sub/rg, or
// updates the one of that name (quota, tier, metadata; the protocol is
// immutable, as in Azure), and returns it and whether it is new.
func (s *Service) CreateOrUpdateShare(ctx context.Context, sub, rg, account string, spec ShareSpec) (*Share, bool, error) {
	if err := api.ValidateFileShareName(spec.Name); err != nil {
		return nil, false, err
	}
	for {
		r, _, err := s.record(ctx, sub, rg, account)
		if err != nil {
			return nil, false, err
		}
		now := s.now().UTC()
		old, err := s.getShare(ctx, r, spec.Name)
		var sh Share
		rev, created := int64(0), true
		switch {
		case err == nil:
			if !strings.EqualFold(old.Protocols, spec.Protocols) {
				return nil, false, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters",
					"The 'enabledProtocols' of file share %s cannot be changed from '%s'.", spec.Name, old.Protocols)
			}
			sh, rev, created = *old, old.revision, false
			sh.Quota, sh.AccessTier, sh.Metadata, sh.ModifiedAt = spec.Quota, spec.AccessTier, cloneTags(spec.Metadata), now
		case err == errStale:
			rev = old.revision // replaced by a new share
			fallthrough
		case errdefs.Is(err, errdefs.ErrNotFound):
			sh = Share{Account: r.Name, AccountUID: r.UID, Name: spec.Name, ID: uid(), Quota: spec.Quota, Protocols: spec.Protocols,
				AccessTier: spec.AccessTier, Metadata: cloneTags(spec.Metadata), CreatedAt: now, ModifiedAt: now}
		default:
			return nil, false, err
		}
		b, err := json.Marshal(&sh)
		if err != nil {
			return nil, false, err
		}
		newRev, err := s.st.PutObject(ctx, kindShares, shareKey(r.Name, sh.Name), b, rev)
		if errdefs.Is(err, errdefs.ErrConflict) || errdefs.Is(err, errdefs.ErrNotFound) {
			continue // written meanwhile: decide again
		}
		if err != nil {
			return nil, false, err
		}
		sh.revision = newRev
		// An account deleted meanwhile took its shares' records with it,
		// perhaps before this one was written: then this one is stale.
		if cur, _, err := s.getRecord(ctx, r.Name); err != nil || cur.UID != r.UID {
			_ = s.st.DeleteObject(ctx, kindShares, shareKey(r.Name, sh.Name), newRev)
			return nil, false, AccountNotFound(account)
		}
		return &sh, created, nil
	}
}

// GetShare reads a share of the account name of sub/rg.
func (s *Service) GetShare(ctx context.Context, sub, rg, account, name string) (*Share, error) {
	r, _, err := s.record(ctx, sub, rg, account)
	if err != nil {
		return nil, err
	}
	sh, err := s.getShare(ctx, r, name)
	if err != nil {
		return nil, ShareNotFound(r.Name, name)
	}
	return sh, nil
}

// FindShare reads a share of the account a (found with FindAccount or
// CheckKey), as an azureFile volume names it.
func (s *Service) FindShare(ctx context.Context, a *Account, name string) (*Share, error) {
	r := &accountRecord{Account: *a}
	sh, err := s.getShare(ctx, r, name)
	if err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, ShareNotFound(a.Name, name)
		}
		return nil, err
	}
	return sh, nil
}

// ListShares lists the shares of the account name of sub/rg, by name.
func (s *Service) ListShares(ctx context.Context, sub, rg, account string) ([]Share, error) {
	r, _, err := s.record(ctx, sub, rg, account)
	if err != nil {
		return nil, err
	}
	all, err := s.shareRecords(ctx, r.Name, "")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, sh := range all {
		if sh.AccountUID == r.UID {
			out = append(out, sh)
		}
	}
	return out, nil
}

// DeleteShare deletes a share of the account name of sub/rg and returns
// it (its data is the hosts' to remove).
func (s *Service) DeleteShare(ctx context.Context, sub, rg, account, name string) (*Share, error) {
	r, _, err := s.record(ctx, sub, rg, account)
	if err != nil {
		return nil, err
	}
	sh, err := s.getShare(ctx, r, name)
	if err != nil {
		return nil, ShareNotFound(r.Name, name)
	}
	if err := s.st.DeleteObject(ctx, kindShares, shareKey(r.Name, name), sh.revision); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, ShareNotFound(r.Name, name)
		}
		if errdefs.Is(err, errdefs.ErrConflict) {
			return nil, errdefs.WithCode(errdefs.ErrConflict, "ShareBeingChanged", "The file share %s changed while it was being deleted; try again.", name)
		}
		return nil, err
	}
	return sh, nil
}

// Shares lists every live share of every account: those whose data a host
// keeps. A host removes the share directories that are not among them.
func (s *Service) Shares(ctx context.Context) ([]Share, error) {
	objs, err := s.st.ListObjects(ctx, kindAccounts, "")
	if err != nil {
		return nil, err
	}
	uids := map[string]string{}
	for _, o := range objs {
		var r accountRecord
		if err := json.Unmarshal(o.Value, &r); err != nil {
			return nil, fmt.Errorf("storage account %s: a damaged record: %w", o.Key, err)
		}
		uids[r.Name] = r.UID
	}
	shares, err := s.st.ListObjects(ctx, kindShares, "")
	if err != nil {
		return nil, err
	}
	out := []Share{}
	for _, o := range shares {
		var sh Share
		if err := json.Unmarshal(o.Value, &sh); err != nil {
			return nil, fmt.Errorf("file share %s: a damaged record: %w", o.Key, err)
		}
		if uids[sh.Account] == sh.AccountUID {
			out = append(out, sh)
		}
	}
	return out, nil
}
