package server

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

// view renders a stored group for a read: its id, the observed state its
// host's agent wrote (instanceView, IP addresses), and never a secret.
func (s *Server) view(cg *store.ContainerGroup, withInstanceView bool) api.ContainerGroup {
	out := cg.Resource
	out.ID = api.ResourceID(cg.Subscription, cg.ResourceGroup, cg.Resource.Name)
	out.Type = api.ResourceType
	props := out.Properties
	props.Containers = slices.Clone(props.Containers) // keeps [] as [], not null
	props.InitContainers = slices.Clone(props.InitContainers)
	if props.IPAddress != nil {
		ip := *props.IPAddress
		props.IPAddress = &ip
	}
	if obs := cg.Observed; obs != nil {
		if props.IPAddress != nil && obs.IP != "" {
			props.IPAddress.IP, props.IPAddress.PrivateIP = obs.PublicIP, obs.IP
			if props.IPAddress.IsPrivate() {
				props.IPAddress.IP = obs.IP
			}
		}
		if withInstanceView {
			props.InstanceView = &api.GroupInstanceView{State: obs.State, Events: mergeEvents(cg.Events, obs.Events), Host: cg.Host}
			for i := range props.Containers {
				if oc := obs.Container(props.Containers[i].Name); oc != nil {
					v := oc.View
					props.Containers[i].Properties.InstanceView = &v
				}
			}
			for i := range props.InitContainers {
				if oc := obs.Container(props.InitContainers[i].Name); oc != nil {
					v := oc.View
					props.InitContainers[i].Properties.InstanceView = &v
				}
			}
		}
	} else if withInstanceView {
		props.InstanceView = &api.GroupInstanceView{State: string(lifecycle.GroupPending), Events: mergeEvents(cg.Events, nil), Host: cg.Host}
	}
	out.Properties = props
	red := api.Redact(&out)
	if !withInstanceView {
		red = api.StripInstanceView(red)
	}
	return *red
}

// mergeEvents puts the control plane's events and the agent's in one list,
// oldest first (timestamps are RFC 3339, so they sort as strings).
func mergeEvents(control, agent []api.Event) []api.Event {
	out := append(append([]api.Event{}, control...), agent...)
	if len(control) > 0 {
		slices.SortStableFunc(out, func(a, b api.Event) int { return strings.Compare(a.FirstTimestamp, b.FirstTimestamp) })
	}
	return out
}

func (s *Server) containerGroup(ctx context.Context, p params) (*store.ContainerGroup, error) {
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return nil, err
	}
	cg, err := s.cfg.Store.GetContainerGroup(ctx, p["sub"], p["rg"], p["name"])
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
			"The Resource 'Microsoft.ContainerInstance/containerGroups/%s' under resource group '%s' was not found.", p["name"], p["rg"])
	}
	return cg, err
}

func (s *Server) putContainerGroup(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	rg, err := s.resourceGroup(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	if err := api.ValidateContainerGroupName(p["name"], r.URL.Query().Get("api-version")); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	cg, err := api.DecodeContainerGroup(body)
	if err != nil {
		return err
	}
	cg.Name = p["name"]
	// A create naming a standby pool is handed one of its ready groups
	// (standbypools.go), or else created as any other.
	pool, err := s.standbyPoolFor(ctx, p["sub"], rg.Name, cg)
	if err != nil {
		return err
	}
	if err := s.fromProfile(ctx, p["sub"], cg); err != nil {
		return err
	}
	if cg.Location == "" {
		cg.Location = rg.Location
	}
	cg.Properties.InstanceView = nil
	cg.Properties.ProvisioningState = ""
	api.SetDefaults(cg)
	if err := api.ValidateContainerGroup(cg); err != nil {
		return err
	}
	if err := api.CheckSecurityPolicy(cg.Name, &cg.Properties, s.cfg.Security); err != nil {
		return err
	}
	if pool != nil {
		rec, err := s.takeFromPool(ctx, pool, rg, cg)
		if err != nil {
			return err
		}
		if rec != nil {
			return s.answerPut(w, r, rec, true)
		}
	}
	// The published ports and the DNS name are checked against every
	// other group, read once.
	all := &storedGroups{st: s.cfg.Store}
	refusedBy, err := s.checkPortsFree(ctx, p["sub"], rg.Name, p["name"], cg, all)
	if err != nil {
		return err
	}
	if cg.Properties.IPAddress != nil {
		if cg.Properties.IPAddress.FQDN, err = s.nameGroup(ctx, p["sub"], rg.Name, p["name"], cg, all); err != nil {
			return err
		}
	}
	// One compare-and-swap decides on the record as it is when it is
	// written: a DELETE (of the group or of its resource group) that came
	// first is never undone, and nothing half-written is left.
	rec, created, err := s.cfg.Store.CreateOrUpdateContainerGroup(ctx, p["sub"], rg.Name, p["name"], func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
		now := time.Now().UTC()
		rec := &store.ContainerGroup{
			Subscription: p["sub"], ResourceGroup: rg.Name, RuntimeID: store.RuntimeID(p["sub"], rg.Name, p["name"]),
			Resource: *cg, CreatedAt: now, UpdatedAt: now, PortsRefusedBy: refusedBy,
		}
		if old == nil {
			rec.Resource.Properties.ProvisioningState = string(lifecycle.Pending)
			return rec, lifecycle.Transition(lifecycle.None, lifecycle.Pending, lifecycle.Server)
		}
		from := lifecycle.Provisioning(old.Resource.Properties.ProvisioningState)
		if from == lifecycle.Deleting {
			return nil, errdefs.WithCode(errdefs.ErrConflict, "ContainerGroupTransitioning",
				"The container group '%s' is still transitioning (being deleted); try again later.", old.Resource.Name)
		}
		if err := api.ValidateUpdate(&old.Resource, cg); err != nil {
			return nil, err
		}
		// What the controller and the agent wrote stays theirs, and the
		// runtime group stays the one the record names (a group handed
		// over from a standby pool runs under its member's id).
		rec.Host, rec.Action, rec.Observed, rec.RuntimeID = old.Host, old.Action, old.Observed, old.RuntimeID
		rec.Resource.Properties.IsCreatedFromStandbyPool = old.Resource.Properties.IsCreatedFromStandbyPool
		if api.SameContainers(&old.Resource.Properties, &cg.Properties) {
			rec.Resource.Properties.ProvisioningState = string(from)
			rec.Error = old.Error
		} else {
			// Other containers: the agent recreates the group.
			if err := lifecycle.Transition(from, lifecycle.Pending, lifecycle.Server); err != nil {
				return nil, err
			}
			rec.Resource.Properties.ProvisioningState = string(lifecycle.Pending)
		}
		return rec, nil
	})
	if err != nil {
		return err
	}
	return s.answerPut(w, r, rec, created)
}

// answerPut answers a PUT that stored rec: with the finished group when it
// runs within the sync window (opwait.go), else with the operation to
// poll, which the controller ends once the agent ran this generation.
func (s *Server) answerPut(w http.ResponseWriter, r *http.Request, rec *store.ContainerGroup, created bool) error {
	ctx := r.Context()
	id := api.ResourceID(rec.Subscription, rec.ResourceGroup, rec.Resource.Name)
	kind := controller.KindCreate
	if !created {
		kind = controller.KindUpdate
	} else {
		s.forgetRoleAssignments(ctx, id)
	}
	op, err := s.newOperation(ctx, rec.Subscription, kind, id, rec.Generation)
	if err != nil {
		return err // accepted all the same: the agent runs it
	}
	s.metrics.accepted.Inc()
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	if d := s.syncWindow(r); d > 0 {
		if done, err := s.awaitOperation(ctx, op.ID, d); err == nil && done.Status == api.OperationSucceeded {
			if now, err := s.cfg.Store.GetContainerGroup(ctx, rec.Subscription, rec.ResourceGroup, rec.Resource.Name); err == nil && now.Generation == rec.Generation {
				writeJSON(w, code, s.view(now, true))
				return nil
			}
		}
	}
	s.asyncHeaders(w, r, op)
	writeJSON(w, code, s.view(rec, true))
	return nil
}

func (s *Server) getContainerGroup(w http.ResponseWriter, r *http.Request, p params) error {
	cg, err := s.containerGroup(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.view(cg, true))
	return nil
}

func (s *Server) patchContainerGroup(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.containerGroup(r.Context(), p); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	tags, err := api.DecodeTagsPatch(body)
	if err != nil {
		return err
	}
	if err := api.ValidateTags(tags); err != nil {
		return err
	}
	cg, err := s.cfg.Store.UpdateContainerGroup(r.Context(), p["sub"], p["rg"], p["name"], func(c *store.ContainerGroup) error {
		if tags != nil { // no "tags" key: leave them alone
			c.Resource.Tags = tags
		}
		c.UpdatedAt = time.Now().UTC()
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.view(cg, true))
	return nil
}

func (s *Server) deleteContainerGroup(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return err
	}
	grace, err := gracePeriod(r)
	if err != nil {
		return err
	}
	// Deleting is recorded (it refuses further PUTs); the group's agent
	// then removes the containers, then the record.
	cg, err := controller.MarkDeleting(ctx, s.cfg.Store, p["sub"], p["rg"], p["name"], grace)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	op, err := s.newOperation(ctx, p["sub"], controller.KindDelete, api.ResourceID(cg.Subscription, cg.ResourceGroup, cg.Resource.Name), cg.Generation)
	if err != nil {
		return err
	}
	s.asyncHeaders(w, r, op)
	writeJSON(w, http.StatusAccepted, s.view(cg, false))
	return nil
}

// gracePeriod reads the Skiff extension ?gracePeriodSeconds=N of a delete:
// the time the containers get between SIGTERM and SIGKILL. Absent, it is
// the server's --stop-grace (nil here).
func gracePeriod(r *http.Request) (*time.Duration, error) {
	v := r.URL.Query().Get("gracePeriodSeconds")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 24*3600 {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidGracePeriod",
			"The query parameter 'gracePeriodSeconds' value '%s' is invalid. It must be a whole number of seconds from 0 to 86400.", v)
	}
	d := time.Duration(n) * time.Second
	return &d, nil
}

func (s *Server) listContainerGroups(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	if p["rg"] != "" {
		if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
			return err
		}
	} else if _, err := s.subscription(ctx, p["sub"]); err != nil {
		return err
	}
	all, err := s.cfg.Store.ListContainerGroups(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	cgs := all[:0]
	for _, cg := range all {
		if listable(ctx, api.ResourceID(cg.Subscription, cg.ResourceGroup, cg.Resource.Name)) {
			cgs = append(cgs, cg)
		}
	}
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	skip, top := pg.skip, pg.top
	// Skiff extension: $expand=instanceView lists the groups as GET shows
	// them (the virtual node reads all its pods' states in one request).
	expand := strings.EqualFold(r.URL.Query().Get("$expand"), "instanceView")
	out := api.List[api.ContainerGroup]{Value: []api.ContainerGroup{}}
	for i := skip; i < len(cgs) && i < skip+top; i++ {
		out.Value = append(out.Value, s.view(&cgs[i], expand))
	}
	if skip+top < len(cgs) {
		next := *r.URL
		v := next.Query()
		v.Set("$skiptoken", strconv.Itoa(skip+top))
		next.RawQuery = v.Encode()
		out.NextLink = baseURL(r) + next.RequestURI()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) stopContainerGroup(w http.ResponseWriter, r *http.Request, p params) error {
	cg, err := s.containerGroup(r.Context(), p)
	if err != nil {
		return err
	}
	if err := controller.Stop(r.Context(), s.cfg.Store, cg.Subscription, cg.ResourceGroup, cg.Resource.Name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) startContainerGroup(w http.ResponseWriter, r *http.Request, p params) error {
	return s.action(w, r, p, store.ActionStart, controller.KindStart, http.StatusAccepted)
}

func (s *Server) restartContainerGroup(w http.ResponseWriter, r *http.Request, p params) error {
	return s.action(w, r, p, store.ActionRestart, controller.KindRestart, http.StatusNoContent)
}

// action asks the group's agent to start or restart it; the operation ends
// once the group runs again.
func (s *Server) action(w http.ResponseWriter, r *http.Request, p params, action, kind string, code int) error {
	ctx := r.Context()
	cg, err := s.containerGroup(ctx, p)
	if err != nil {
		return err
	}
	seq, err := controller.RequestAction(ctx, s.cfg.Store, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, action)
	if err != nil {
		return err
	}
	op, err := s.newOperation(ctx, p["sub"], kind, api.ResourceID(cg.Subscription, cg.ResourceGroup, cg.Resource.Name), seq)
	if err != nil {
		return err
	}
	s.asyncHeaders(w, r, op)
	w.WriteHeader(code)
	return nil
}

func (s *Server) outboundEndpoints(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.containerGroup(r.Context(), p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, []string{})
	return nil
}

// storedGroups reads every stored container group once, on first use, for
// the checks of one request against all the others (ports, DNS names).
type storedGroups struct {
	st store.Store
	// except is left out: the standby pool member a group takes over.
	except *store.ContainerGroup
	read   bool
	groups []store.ContainerGroup
	err    error
}

func (a *storedGroups) get(ctx context.Context) ([]store.ContainerGroup, error) {
	if !a.read {
		a.groups, a.err = store.AllContainerGroups(ctx, a.st)
		a.read = true
		if x := a.except; x != nil && a.err == nil {
			a.groups = slices.DeleteFunc(a.groups, func(g store.ContainerGroup) bool { return g.Is(x.Subscription, x.ResourceGroup, x.Resource.Name) })
		}
	}
	return a.groups, a.err
}

// checkPortsFree refuses ports another group publishes already (they share
// the host's public address; another subscription's group is not named),
// and, through the host network, ports this group does not publish yet that
// a host process listens on, that the server itself uses, or that are
// outside the operator's --published-ports: a 409 or 400 before anything is
// stored. In a cluster it asks the hosts instead (hostsRefusingPorts) and
// returns those that refuse.
func (s *Server) checkPortsFree(ctx context.Context, sub, rg, name string, cg *api.ContainerGroup, all *storedGroups) ([]string, error) {
	if !cg.Properties.IPAddress.Published() {
		return nil, nil
	}
	if s.cfg.Hosts != nil {
		return s.hostsRefusingPorts(ctx, sub, rg, name, cg.Properties.IPAddress.Ports)
	}
	want := map[string]bool{}
	for _, p := range cg.Properties.IPAddress.Ports {
		want[portKey(p)] = true
	}
	groups, err := all.get(ctx)
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{} // published by this group's current version
	for _, other := range groups {
		ip := other.Resource.Properties.IPAddress
		if !ip.Published() {
			continue
		}
		for _, p := range ip.Ports {
			key := portKey(p)
			switch {
			case other.Is(sub, rg, name):
				mine[key] = true
			case want[key] && other.Subscription != sub:
				return nil, errdefs.WithCode(errdefs.ErrConflict, "PortAlreadyInUse",
					"Port %s is already published on this host.", key)
			case want[key]:
				return nil, errdefs.WithCode(errdefs.ErrConflict, "PortAlreadyInUse",
					"Port %s is already published by container group '%s' in resource group '%s'.", key, other.Resource.Name, other.ResourceGroup)
			}
		}
	}
	var fresh []api.Port
	for _, p := range cg.Properties.IPAddress.Ports {
		if !mine[portKey(p)] {
			fresh = append(fresh, p)
		}
	}
	return nil, s.cfg.Host.CheckPorts(fresh)
}

// hostsRefusingPorts asks the agents of a cluster whether they can publish
// ports: each host has its own public address, so other groups' ports are
// the scheduler's to weigh, but a host process listening on one, or a
// --published-ports range, only the host knows. A group placed already is
// asked of its host only; a new one of every Ready host, at once. If every
// host asked refuses, so does the PUT, with the first refusal (by host
// name): one host behaves as the embedded server does. Otherwise the hosts
// that refused are returned, for the scheduler to pass over. A host that
// does not answer refuses nothing: its agent checks again when it sets the
// group up.
func (s *Server) hostsRefusingPorts(ctx context.Context, sub, rg, name string, ports []api.Port) ([]string, error) {
	var hosts []string
	old, err := s.cfg.Store.GetContainerGroup(ctx, sub, rg, name)
	switch {
	case err == nil && old.Host != "":
		hosts = []string{old.Host}
	case err == nil || errdefs.Is(err, errdefs.ErrNotFound):
		if hosts, err = s.cfg.Hosts.Ready(ctx); err != nil {
			return nil, err
		}
		slices.Sort(hosts)
	default:
		return nil, err
	}
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			agent, err := s.cfg.Hosts.Agent(ctx, h)
			if err == nil {
				err = agent.CheckPorts(ports)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	var refused []string
	var first error
	for i, err := range errs {
		switch {
		case err == nil:
		case errdefs.Is(err, errdefs.ErrConflict) || errdefs.Is(err, errdefs.ErrInvalidArgument):
			refused = append(refused, hosts[i])
			if first == nil {
				first = err
			}
		default:
			s.log.Warn("a host did not answer a port check", "host", hosts[i], "err", err)
		}
	}
	if len(hosts) > 0 && len(refused) == len(hosts) {
		return nil, first
	}
	return refused, nil
}

// portKey names a published port as "TCP/80".
func portKey(p api.Port) string { return strings.ToUpper(p.Protocol) + "/" + strconv.Itoa(int(p.Port)) }
