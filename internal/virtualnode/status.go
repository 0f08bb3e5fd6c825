package virtualnode

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/lifecycle"
)

// Pod condition reasons and waiting reasons the virtual node sets.
const (
	ReasonUnsupported = "UnsupportedPodSpec"
	ReasonCreating    = "ContainerCreating"
	ReasonInitPending = "PodInitializing"
	ReasonGroupGone   = "ContainerGroupNotFound"
)

// pullReasons are waiting reasons of an image that could not be pulled.
var pullReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

func parseTime(s string) metav1.Time {
	if s == "" {
		return metav1.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return metav1.NewTime(t)
		}
	}
	return metav1.Time{}
}

// containerState maps one ACI container state to a Kubernetes one.
func containerState(s *api.ContainerState, waitingReason string) corev1.ContainerState {
	if s == nil {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waitingReason}}
	}
	switch s.State {
	case api.ContainerRunning:
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: parseTime(s.StartTime)}}
	case api.ContainerTerminated:
		t := &corev1.ContainerStateTerminated{StartedAt: parseTime(s.StartTime), FinishedAt: parseTime(s.FinishTime)}
		if s.ExitCode != nil {
			t.ExitCode = *s.ExitCode
		}
		switch {
		case strings.Contains(s.DetailStatus, "OOMKilled"):
			t.Reason = "OOMKilled"
		case t.ExitCode == 0 && !strings.HasPrefix(s.DetailStatus, "StartError"):
			t.Reason = "Completed"
		case strings.HasPrefix(s.DetailStatus, "StartError"):
			t.Reason = "StartError"
			t.Message = s.DetailStatus
			if t.ExitCode == 0 {
				t.ExitCode = 128
			}
		default:
			t.Reason = "Error"
			if s.DetailStatus != "" && s.DetailStatus != "Error" && s.DetailStatus != "Completed" {
				t.Message = s.DetailStatus
			}
		}
		return corev1.ContainerState{Terminated: t}
	}
	reason := s.DetailStatus
	if reason == "" || reason == "Waiting" {
		reason = waitingReason
	}
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
}

// containerStatus builds a Kubernetes container status from the view of a
// container in its group (nil while the group is not yet known).
func containerStatus(group, name, image string, iv *api.ContainerInstanceView, waitingReason string, events []api.Event) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: name, Image: image, ImageID: image}
	var cur *api.ContainerState
	if iv != nil {
		cur = iv.CurrentState
		cs.RestartCount = iv.RestartCount
		if iv.PreviousState != nil && iv.PreviousState.State != "" {
			cs.LastTerminationState = containerState(iv.PreviousState, "")
		}
		events = iv.Events
	}
	cs.State = containerState(cur, waitingReason)
	if w := cs.State.Waiting; w != nil {
		// Give the message of the last warning, e.g. why a pull failed.
		for i := len(events) - 1; i >= 0; i-- {
			if events[i].Type == api.EventWarning {
				w.Message = events[i].Message
				break
			}
		}
	}
	running := cs.State.Running != nil
	cs.Ready = running
	cs.Started = &running
	if running || cs.State.Terminated != nil || cs.RestartCount > 0 {
		cs.ContainerID = "skiff://" + group + "/" + name
	}
	return cs
}

// groupStatus maps a container group to the pod's status. g is the group
// as GET returns it (with instance views). prev is the status last
// reported, whose condition times are kept when nothing changed.
func groupStatus(pod *corev1.Pod, g *api.ContainerGroup, hostIP string, startTime metav1.Time, prev *corev1.PodStatus) corev1.PodStatus {
	st := corev1.PodStatus{Phase: corev1.PodPending, HostIP: hostIP, StartTime: &startTime}
	if hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: hostIP}}
	}
	p := &g.Properties
	if ip := p.IPAddress; ip != nil {
		// The group's own address; a server without the privateIp
		// extension reports only ip.
		podIP := ip.PrivateIP
		if podIP == "" {
			podIP = ip.IP
		}
		if podIP != "" {
			st.PodIP = podIP
			st.PodIPs = []corev1.PodIP{{IP: podIP}}
		}
	}
	// The group's typed states (package lifecycle) map onto the pod's
	// phase here; the group's own machine is the runtime's.
	provFailed := lifecycle.Provisioning(p.ProvisioningState) == lifecycle.Failed
	var groupState lifecycle.GroupState
	var groupEvents []api.Event
	if p.InstanceView != nil {
		groupState = lifecycle.GroupState(p.InstanceView.State)
		groupEvents = p.InstanceView.Events
	}

	initByName := map[string]*api.InitContainerProperties{}
	for i := range p.InitContainers {
		initByName[p.InitContainers[i].Name] = &p.InitContainers[i].Properties
	}
	appByName := map[string]*api.ContainerProperties{}
	for i := range p.Containers {
		appByName[p.Containers[i].Name] = &p.Containers[i].Properties
	}

	initialized := true
	initFailed := false
	for _, c := range pod.Spec.InitContainers {
		var iv *api.ContainerInstanceView
		if ic := initByName[c.Name]; ic != nil {
			iv = ic.InstanceView
		}
		cs := containerStatus(g.Name, c.Name, c.Image, iv, ReasonInitPending, groupEvents)
		cs.Ready = false
		if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
			cs.Ready = true
		} else {
			initialized = false
			if t != nil && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				initFailed = true
			}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}

	waitReason := ReasonCreating
	if !initialized {
		waitReason = ReasonInitPending
	}
	allReady, anyRunning, allStarted := true, false, true
	allDone, allSucceeded := true, true
	pullFailed := false
	for _, c := range pod.Spec.Containers {
		var iv *api.ContainerInstanceView
		if ac := appByName[c.Name]; ac != nil {
			iv = ac.InstanceView
		}
		cs := containerStatus(g.Name, c.Name, c.Image, iv, waitReason, groupEvents)
		switch {
		case cs.Ready && iv != nil && iv.Ready != nil:
			cs.Ready = *iv.Ready // Skiff's own probe result
		case cs.Ready && c.ReadinessProbe != nil && iv != nil:
			// A server without the ready extension: inferred from events.
			cs.Ready = probablyReady(c.ReadinessProbe, cs.State.Running.StartedAt.Time, iv.Events, time.Now())
		}
		if provFailed && cs.State.Waiting != nil && cs.State.Waiting.Reason == ReasonCreating {
			cs.State.Waiting.Reason = "CreateContainerError"
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			allReady = false
		}
		if cs.State.Running != nil {
			anyRunning = true
		}
		if cs.State.Running == nil && cs.State.Terminated == nil && cs.RestartCount == 0 {
			allStarted = false
		}
		if w := cs.State.Waiting; w != nil && pullReasons[w.Reason] {
			pullFailed = true
		}
		if t := cs.State.Terminated; t == nil {
			allDone, allSucceeded = false, false
		} else if t.ExitCode != 0 {
			allSucceeded = false
		}
	}

	switch {
	case pullFailed:
		// As the kubelet does: an image that cannot be pulled keeps the pod
		// Pending, with the reason on the container.
		st.Phase = corev1.PodPending
	case initFailed:
		st.Phase = corev1.PodFailed
	case groupState == lifecycle.GroupSucceeded || (allDone && allSucceeded && pod.Spec.RestartPolicy != corev1.RestartPolicyAlways && len(pod.Spec.Containers) > 0):
		st.Phase = corev1.PodSucceeded
	case groupState == lifecycle.GroupFailed || (allDone && pod.Spec.RestartPolicy == corev1.RestartPolicyNever && len(pod.Spec.Containers) > 0):
		st.Phase = corev1.PodFailed
	case groupState == lifecycle.GroupStopped:
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = "Stopped", "the container group was stopped through the Skiff API"
	case initialized && allStarted && (anyRunning || groupState == lifecycle.GroupRunning):
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	if provFailed && st.Phase == corev1.PodPending {
		for i := len(groupEvents) - 1; i >= 0; i-- {
			if groupEvents[i].Type == api.EventWarning {
				st.Message = groupEvents[i].Message
				break
			}
		}
	}

	ready := allReady && st.Phase == corev1.PodRunning
	st.Conditions = conditions(prev, map[corev1.PodConditionType]bool{
		corev1.PodScheduled:    true,
		corev1.PodInitialized:  initialized,
		corev1.ContainersReady: ready,
		corev1.PodReady:        ready,
	})
	return st
}

// conditions builds the pod conditions, keeping the transition time of a
// condition whose status did not change since prev.
func conditions(prev *corev1.PodStatus, want map[corev1.PodConditionType]bool) []corev1.PodCondition {
	now := metav1.Now()
	var out []corev1.PodCondition
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		s := corev1.ConditionFalse
		if want[t] {
			s = corev1.ConditionTrue
		}
		c := corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
		if prev != nil {
			for _, pc := range prev.Conditions {
				if pc.Type == t && pc.Status == s {
					c.LastTransitionTime = pc.LastTransitionTime
				}
			}
		}
		if s == corev1.ConditionFalse && (t == corev1.PodReady || t == corev1.ContainersReady) {
			c.Reason = "ContainersNotReady"
		}
		out = append(out, c)
	}
	return out
}

// failedStatus is the status of a pod the virtual node refused.
func failedStatus(pod *corev1.Pod, hostIP, reason, msg string) corev1.PodStatus {
	now := metav1.Now()
	st := corev1.PodStatus{Phase: corev1.PodFailed, Reason: reason, Message: msg, HostIP: hostIP, StartTime: &now}
	term := func(c corev1.Container) corev1.ContainerStatus {
		f := false
		return corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: &f, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 128, Reason: reason, Message: msg, FinishedAt: now}}}
	}
	for _, c := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, term(c))
	}
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, term(c))
	}
	st.Conditions = conditions(nil, map[corev1.PodConditionType]bool{corev1.PodScheduled: true})
	return st
}

// terminatedStatus is the final status of a pod whose group was deleted.
func terminatedStatus(pod *corev1.Pod, reason, msg string) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	now := metav1.Now()
	failed := false
	fix := func(cs []corev1.ContainerStatus) {
		for i := range cs {
			if cs[i].State.Terminated != nil {
				if cs[i].State.Terminated.ExitCode != 0 {
					failed = true
				}
				continue
			}
			if cs[i].State.Running != nil {
				cs[i].LastTerminationState = corev1.ContainerState{}
			}
			started := metav1.Time{}
			if cs[i].State.Running != nil {
				started = cs[i].State.Running.StartedAt
			}
			cs[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: reason, Message: msg, StartedAt: started, FinishedAt: now}}
			cs[i].Ready = false
			f := false
			cs[i].Started = &f
		}
	}
	fix(st.ContainerStatuses)
	st.Phase = corev1.PodSucceeded
	if failed {
		st.Phase = corev1.PodFailed
	}
	st.Conditions = conditions(&pod.Status, map[corev1.PodConditionType]bool{corev1.PodScheduled: true, corev1.PodInitialized: true})
	return st
}

// probablyReady infers readiness of a running container with a readiness
// probe. The ACI instance view has no ready flag, so it is read from what
// Skiff does expose: the probe's initial delay has passed and no
// "Readiness probe failed" event was seen within failureThreshold periods.
func probablyReady(p *corev1.Probe, started time.Time, events []api.Event, now time.Time) bool {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	if p.PeriodSeconds == 0 {
		period = 10 * time.Second
	}
	failures := max(p.FailureThreshold, 1)
	if p.FailureThreshold == 0 {
		failures = 3
	}
	if !started.IsZero() && now.Sub(started) < time.Duration(p.InitialDelaySeconds)*time.Second {
		return false
	}
	for _, ev := range events {
		if !strings.HasPrefix(ev.Message, "Readiness probe failed") {
			continue
		}
		last := parseTime(ev.LastTimestamp).Time
		if !last.IsZero() && now.Sub(last) < period*time.Duration(failures)+period/2 && !last.Before(started) {
			return false
		}
	}
	return true
}
