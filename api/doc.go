// Package api holds the wire types of Microsoft.ContainerInstance and
// Microsoft.Resources, with JSON names exactly as ARM spells them.
// It does no I/O.
package api
