package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/store"
)

// Microsoft.Storage's routes: storage accounts (PUT answers 200 with the
// account, never 201: az's Python client refuses a 201 of
// StorageAccounts_Create), their keys, the file service and its shares
// (PUT: 201 new, 200 updated, as ARM), and checkNameAvailability. Records
// are package storage's; a deleted share's data is removed from the hosts
// (removeShareData).

const (
	storagePrefix = "/providers/microsoft.storage"
	saListSuffix  = storagePrefix + "/storageaccounts"
	saPrefix      = rgPrefix + saListSuffix + "/{account}"
	sharesPrefix  = saPrefix + "/fileservices/default/shares"
)

func (s *Server) registerStorageRoutes() {
	r := &s.routes
	r.handle("POST", subPrefix+storagePrefix+"/checknameavailability", s.checkStorageName)
	r.handle("GET", subPrefix+saListSuffix, s.listStorageAccounts)
	r.handle("GET", rgPrefix+saListSuffix, s.listStorageAccounts)
	r.handle("PUT", saPrefix, s.putStorageAccount)
	r.handle("GET", saPrefix, s.getStorageAccount)
	r.handle("PATCH", saPrefix, s.patchStorageAccount)
	r.handle("DELETE", saPrefix, s.deleteStorageAccount)
	r.handle("POST", saPrefix+"/listkeys", s.listStorageKeys)
	r.handle("POST", saPrefix+"/regeneratekey", s.regenerateStorageKey)
	r.handle("GET", saPrefix+"/fileservices", s.listFileServices)
	r.handle("GET", saPrefix+"/fileservices/default", s.getFileService)
	r.handle("GET", sharesPrefix, s.listFileShares)
	r.handle("PUT", sharesPrefix+"/{share}", s.putFileShare)
	r.handle("GET", sharesPrefix+"/{share}", s.getFileShare)
	r.handle("DELETE", sharesPrefix+"/{share}", s.deleteFileShare)
}

// isStoragePattern reports whether a route is Microsoft.Storage's, whose
// api-versions are the storage provider's (api.CheckStorageAPIVersion).
func isStoragePattern(pattern string) bool {
	return strings.Contains(strings.ToLower(pattern), storagePrefix+"/")
}

// storageOn returns the storage service, or an error on a server without
// one (a store without a seal key).
func (s *Server) storageOn() (*storage.Service, error) {
	if s.storage == nil {
		return nil, errdefs.WithCode(errdefs.ErrNotImplemented, "FeatureNotSupported", "Storage accounts are not available on this server.")
	}
	return s.storage, nil
}

// storageRG checks the subscription and resource group of a request: both
// must exist (SubscriptionNotFound, ResourceGroupNotFound).
func (s *Server) storageRG(ctx context.Context, p params) (*storage.Service, *store.ResourceGroup, error) {
	st, err := s.storageOn()
	if err != nil {
		return nil, nil, err
	}
	rg, err := s.resourceGroup(ctx, p["sub"], p["rg"])
	return st, rg, err
}

// ---- views ----

// storageEndpoints are the service URLs an account of kind has.
// The file endpoint is this server's Files data plane (files.go), as the
// client reached the server; the others name services Skiff does not
// serve.
func storageEndpoints(r *http.Request, name, kind string) *api.StorageEndpoints {
	u := func(svc string) string { return "https://" + name + "." + svc + "." + api.StorageEndpointSuffix + "/" }
	file := fileEndpoint(r, name)
	switch kind {
	case "FileStorage":
		return &api.StorageEndpoints{File: file}
	case "BlobStorage", "BlockBlobStorage":
		return &api.StorageEndpoints{Blob: u("blob"), Dfs: u("dfs")}
	case "Storage":
		return &api.StorageEndpoints{Blob: u("blob"), Queue: u("queue"), Table: u("table"), File: file}
	}
	return &api.StorageEndpoints{Blob: u("blob"), Queue: u("queue"), Table: u("table"), File: file, Web: u("web"), Dfs: u("dfs")}
}

// accountView is an account as ARM shows it; it never holds a key.
func accountView(r *http.Request, a *storage.Account, apiVersion string) api.StorageAccount {
	created := a.CreatedAt
	k1, k2 := a.KeysCreatedAt[0], a.KeysCreatedAt[1]
	tier, _, _ := strings.Cut(a.Sku, "_")
	tags := a.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	https := true
	enc := &api.StorageEncryptionService{Enabled: true, KeyType: "Account", LastEnabledTime: &created}
	v := api.StorageAccount{
		ID: a.ID(), Name: a.Name, Type: api.StorageAccountType, Location: a.Location, Tags: tags,
		Sku: &api.StorageSku{Name: a.Sku, Tier: tier}, Kind: a.Kind,
		Properties: &api.StorageAccountProperties{
			ProvisioningState: "Succeeded", PrimaryEndpoints: storageEndpoints(r, a.Name, a.Kind), PrimaryLocation: a.Location,
			StatusOfPrimary: "available", CreationTime: &created, KeyCreationTime: &api.StorageKeyCreationTime{Key1: &k1, Key2: &k2},
			AccessTier: a.AccessTier, SupportsHTTPSTrafficOnly: &https, MinimumTLSVersion: a.MinimumTLS,
			Encryption: &api.StorageEncryption{KeySource: "Microsoft.Storage", Services: &api.StorageEncryptionServices{Blob: enc, File: enc}},
		},
	}
	if !api.StorageKeysAsList(apiVersion) { // 2015-06-15 names the SKU accountType
		v.Properties.AccountType = a.Sku
	}
	return v
}

func shareID(a *storage.Account, share string) string {
	return a.ID() + "/fileServices/default/shares/" + share
}

// shareETag is a share's entity tag, the same through ARM and the Files
// data plane: its modification time.
func shareETag(sh *storage.Share) string {
	return `"0x` + strings.ToUpper(strconv.FormatInt(sh.ModifiedAt.UnixNano(), 16)) + `"`
}

// shareSpec is what a validated share asks for (api.ValidateFileShare),
// from ARM's body or the Files API's headers.
func shareSpec(name string, p api.FileShareProperties) storage.ShareSpec {
	return storage.ShareSpec{Name: name, Quota: p.ShareQuota, Protocols: p.EnabledProtocols, AccessTier: p.AccessTier, Metadata: p.Metadata}
}

func shareView(a *storage.Account, sh *storage.Share) api.FileShare {
	mod := sh.ModifiedAt
	return api.FileShare{
		ID: shareID(a, sh.Name), Name: sh.Name, Type: api.FileShareType, Etag: shareETag(sh),
		Properties: api.FileShareProperties{
			LastModifiedTime: &mod, Metadata: sh.Metadata, ShareQuota: sh.Quota, EnabledProtocols: sh.Protocols,
			AccessTier: sh.AccessTier, LeaseStatus: "unlocked", LeaseState: "available",
		},
	}
}

func keysView(keys []storage.KeyValue, apiVersion string) any {
	if !api.StorageKeysAsList(apiVersion) {
		v := api.StorageAccountKeysV2015{}
		for _, k := range keys {
			switch k.Name {
			case storage.Key1:
				v.Key1 = k.Value
			case storage.Key2:
				v.Key2 = k.Value
			}
		}
		return v
	}
	out := api.StorageAccountListKeysResult{Keys: []api.StorageAccountKey{}}
	for _, k := range keys {
		at := k.CreatedAt
		out.Keys = append(out.Keys, api.StorageAccountKey{KeyName: k.Name, Value: k.Value, Permissions: "FULL", CreationTime: &at})
	}
	return out
}

// ---- accounts ----

func (s *Server) checkStorageName(w http.ResponseWriter, r *http.Request, p params) error {
	st, err := s.storageOn()
	if err != nil {
		return err
	}
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := api.DecodeCheckName(body)
	if err != nil {
		return err
	}
	res, err := st.CheckName(r.Context(), in.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) listStorageAccounts(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	st, err := s.storageOn()
	if err != nil {
		return err
	}
	if err := s.listScopeExists(ctx, p); err != nil {
		return err
	}
	accts, err := st.ListAccounts(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	out := api.List[api.StorageAccount]{Value: []api.StorageAccount{}}
	for i := range accts {
		if listable(ctx, accts[i].ID()) {
			out.Value = append(out.Value, accountView(r, &accts[i], r.URL.Query().Get("api-version")))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) putStorageAccount(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	st, rg, err := s.storageRG(ctx, p)
	if err != nil {
		return err
	}
	if err := api.ValidateStorageAccountName(p["account"]); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := api.DecodeStorageAccount(body)
	if err != nil {
		return err
	}
	if err := api.ValidateStorageAccount(in); err != nil {
		return err
	}
	return s.writeStorageAccount(w, r, st, rg, p["account"], in)
}

// writeStorageAccount creates or updates the account name of rg as in
// (validated, in canonical case) says, and answers 200 with it.
func (s *Server) writeStorageAccount(w http.ResponseWriter, r *http.Request, st *storage.Service, rg *store.ResourceGroup, name string, in *api.StorageAccount) error {
	if err := store.CheckTakesGroups(rg); err != nil {
		return err
	}
	loc := in.Location
	if strings.TrimSpace(loc) == "" {
		loc = rg.Location
	}
	spec := storage.AccountSpec{Subscription: rg.Subscription, ResourceGroup: rg.Name, Name: name, Location: loc, Tags: in.Tags,
		Sku: in.Sku.Name, Kind: in.Kind, AccessTier: in.Properties.AccessTier, MinimumTLS: in.Properties.MinimumTLSVersion}
	a, created, err := st.CreateOrUpdateAccount(r.Context(), spec)
	if err != nil {
		return err
	}
	if created {
		s.forgetRoleAssignments(r.Context(), a.ID())
	}
	writeJSON(w, http.StatusOK, accountView(r, a, r.URL.Query().Get("api-version")))
	return nil
}

func (s *Server) getStorageAccount(w http.ResponseWriter, r *http.Request, p params) error {
	st, _, err := s.storageRG(r.Context(), p)
	if err != nil {
		return err
	}
	a, err := st.GetAccount(r.Context(), p["sub"], p["rg"], p["account"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accountView(r, a, r.URL.Query().Get("api-version")))
	return nil
}

// patchStorageAccount is StorageAccounts_Update: the tags, SKU, kind and
// tiers it gives replace the account's.
func (s *Server) patchStorageAccount(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	st, rg, err := s.storageRG(ctx, p)
	if err != nil {
		return err
	}
	a, err := st.GetAccount(ctx, p["sub"], p["rg"], p["account"])
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := api.DecodeStorageAccount(body)
	if err != nil {
		return err
	}
	merged := &api.StorageAccount{Location: a.Location, Tags: a.Tags, Sku: &api.StorageSku{Name: a.Sku}, Kind: a.Kind,
		Properties: &api.StorageAccountProperties{AccessTier: a.AccessTier, MinimumTLSVersion: a.MinimumTLS}}
	if in.Tags != nil {
		merged.Tags = in.Tags
	}
	if in.Sku != nil {
		merged.Sku = in.Sku
	}
	if in.Kind != "" {
		merged.Kind = in.Kind
	}
	if ip := in.Properties; ip != nil {
		if ip.AccessTier != "" {
			merged.Properties.AccessTier = ip.AccessTier
		}
		if ip.MinimumTLSVersion != "" {
			merged.Properties.MinimumTLSVersion = ip.MinimumTLSVersion
		}
	}
	if err := api.ValidateStorageAccount(merged); err != nil {
		return err
	}
	return s.writeStorageAccount(w, r, st, rg, a.Name, merged)
}

func (s *Server) deleteStorageAccount(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	st, _, err := s.storageRG(ctx, p)
	if err != nil {
		return err
	}
	shares, err := st.DeleteAccount(ctx, p["sub"], p["rg"], p["account"])
	s.removeShareData(ctx, shares)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) listStorageKeys(w http.ResponseWriter, r *http.Request, p params) error {
	st, _, err := s.storageRG(r.Context(), p)
	if err != nil {
		return err
	}
	keys, err := st.ListKeys(r.Context(), p["sub"], p["rg"], p["account"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keysView(keys, r.URL.Query().Get("api-version")))
	return nil
}

func (s *Server) regenerateStorageKey(w http.ResponseWriter, r *http.Request, p params) error {
	st, _, err := s.storageRG(r.Context(), p)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	name, err := api.DecodeRegenerateKey(body)
	if err != nil {
		return err
	}
	keys, err := st.RegenerateKey(r.Context(), p["sub"], p["rg"], p["account"], name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keysView(keys, r.URL.Query().Get("api-version")))
	return nil
}

// deleteStorageOf deletes the storage accounts of a resource group being
// deleted, with their shares' data (deleteResourceGroup).
func (s *Server) deleteStorageOf(ctx context.Context, sub, rg string) error {
	if s.storage == nil {
		return nil
	}
	shares, err := s.storage.DeleteResourceGroup(ctx, sub, rg)
	s.removeShareData(ctx, shares)
	return err
}

// ---- file service and shares ----

func fileServiceView(a *storage.Account) api.FileService {
	tier, _, _ := strings.Cut(a.Sku, "_")
	return api.FileService{ID: a.ID() + "/fileServices/default", Name: "default", Type: api.FileServiceType,
		Sku:        &api.StorageSku{Name: a.Sku, Tier: tier},
		Properties: api.FileServiceProperties{Cors: &api.StorageCors{CorsRules: []json.RawMessage{}}, ShareDeleteRetentionPolicy: &api.StorageDeletePolicy{}}}
}

func (s *Server) account(ctx context.Context, p params) (*storage.Service, *storage.Account, error) {
	st, _, err := s.storageRG(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	a, err := st.GetAccount(ctx, p["sub"], p["rg"], p["account"])
	return st, a, err
}

func (s *Server) listFileServices(w http.ResponseWriter, r *http.Request, p params) error {
	_, a, err := s.account(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.FileService]{Value: []api.FileService{fileServiceView(a)}})
	return nil
}

func (s *Server) getFileService(w http.ResponseWriter, r *http.Request, p params) error {
	_, a, err := s.account(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, fileServiceView(a))
	return nil
}

func (s *Server) listFileShares(w http.ResponseWriter, r *http.Request, p params) error {
	st, a, err := s.account(r.Context(), p)
	if err != nil {
		return err
	}
	shares, err := st.ListShares(r.Context(), p["sub"], p["rg"], a.Name)
	if err != nil {
		return err
	}
	out := api.List[api.FileShare]{Value: []api.FileShare{}}
	for i := range shares {
		out.Value = append(out.Value, shareView(a, &shares[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) putFileShare(w http.ResponseWriter, r *http.Request, p params) error {
	st, a, err := s.account(r.Context(), p)
	if err != nil {
		return err
	}
	if err := api.ValidateFileShareName(p["share"]); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := api.DecodeFileShare(body)
	if err != nil {
		return err
	}
	if err := api.ValidateFileShare(in, a.Premium()); err != nil {
		return err
	}
	sh, created, err := st.CreateOrUpdateShare(r.Context(), p["sub"], p["rg"], a.Name, shareSpec(p["share"], in.Properties))
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, shareView(a, sh))
	return nil
}

func (s *Server) getFileShare(w http.ResponseWriter, r *http.Request, p params) error {
	st, a, err := s.account(r.Context(), p)
	if err != nil {
		return err
	}
	sh, err := st.GetShare(r.Context(), p["sub"], p["rg"], a.Name, p["share"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, shareView(a, sh))
	return nil
}

func (s *Server) deleteFileShare(w http.ResponseWriter, r *http.Request, p params) error {
	st, a, err := s.account(r.Context(), p)
	if err != nil {
		return err
	}
	sh, err := st.DeleteShare(r.Context(), p["sub"], p["rg"], a.Name, p["share"])
	if errdefs.Is(err, errdefs.ErrNotFound) && errdefs.CodeOf(err) == "ShareNotFound" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	s.removeShareData(r.Context(), []storage.Share{*sh})
	w.WriteHeader(http.StatusOK)
	return nil
}

// removeShareDataTimeout bounds the hosts' removal of deleted shares'
// data; a host that does not answer in time removes it when its agent
// starts next, or at its next sweep (agent.ShareSweepInterval).
const removeShareDataTimeout = 30 * time.Second

// removeShareData asks every Ready host (the one host in the embedded
// mode) to remove the data of deleted shares. The records are gone
// already, so a failure is logged, not answered: the agents sweep what is
// left.
func (s *Server) removeShareData(ctx context.Context, shares []storage.Share) {
	if len(shares) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeShareDataTimeout)
	defer cancel()
	var hosts []hostapi.Host
	var names []string
	if s.cfg.Hosts == nil {
		if s.cfg.Host == nil {
			return
		}
		hosts, names = []hostapi.Host{s.cfg.Host}, []string{"local"}
	} else {
		ready, err := s.cfg.Hosts.Ready(ctx)
		if err != nil {
			s.log.Warn("the hosts that hold deleted shares are not known; their agents remove them", "err", err)
			return
		}
		for _, h := range ready {
			agent, err := s.cfg.Hosts.Agent(ctx, h)
			if err != nil {
				s.log.Warn("a host did not answer the removal of deleted shares", "host", h, "err", err)
				continue
			}
			hosts, names = append(hosts, agent), append(names, h)
		}
	}
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			for _, sh := range shares {
				if err := h.RemoveShare(ctx, sh.Account, sh.Dir()); err != nil {
					s.log.Warn("a host did not remove a deleted share's data", "host", names[i], "account", sh.Account, "share", sh.Name, "err", err)
				}
			}
		})
	}
	wg.Wait()
}
