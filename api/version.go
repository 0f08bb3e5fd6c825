package api

import (
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The api-version range the server accepts (docs/api.md). Any calendar date
// in the range is accepted, with or without a "-preview" suffix, because
// real clients pin many different versions (aci-api.md §1.1). The oldest is
// ACI's first, 2017-08-01-preview, which seed 000's templates name; its
// shapes differ only in a published port given as a string (portjson.go).
const (
	MinAPIVersion = "2017-08-01"
	MaxAPIVersion = "2026-07-01"
)

const previewSuffix = "-preview"

// CheckAPIVersion checks the api-version query parameter v. An empty v gives
// code MissingApiVersionParameter; a v that is not a date from MinAPIVersion
// to MaxAPIVersion (optionally followed by "-preview") gives
// InvalidApiVersionParameter. Both are of class errdefs.ErrInvalidArgument.
func CheckAPIVersion(v string) error {
	if v == "" {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
	}
	date := v
	if len(date) > len(previewSuffix) && strings.EqualFold(date[len(date)-len(previewSuffix):], previewSuffix) {
		date = date[:len(date)-len(previewSuffix)]
	}
	// time.Parse accepts only a real calendar date in exactly this layout;
	// the string comparison below relies on the fixed width it implies.
	if _, err := time.Parse(time.DateOnly, date); err != nil || len(date) != len(time.DateOnly) ||
		date < MinAPIVersion || date > MaxAPIVersion {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s' through '%s', optionally with a '%s' suffix.",
			v, MinAPIVersion, MaxAPIVersion, previewSuffix)
	}
	return nil
}
