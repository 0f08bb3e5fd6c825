package api

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
)

// EmptyDirMediumMemory is the emptyDir medium backed by a tmpfs.
const EmptyDirMediumMemory = "Memory"

// MinEmptyDirSizeLimit is the smallest sizeLimit an emptyDir may have.
const MinEmptyDirSizeLimit = 1 << 20

// SizeLimitBytes parses SizeLimit; 0 means no limit. The error says what is
// wrong, for a message naming the volume.
func (e *EmptyDirVolume) SizeLimitBytes() (int64, error) {
	if e == nil || e.SizeLimit == "" {
		return 0, nil
	}
	q, err := resource.ParseQuantity(e.SizeLimit)
	if err != nil {
		return 0, fmt.Errorf("'%s' is not a quantity such as 64Mi or 1Gi", clipString(e.SizeLimit, 64))
	}
	n, ok := q.AsInt64()
	if !ok || q.Sign() <= 0 {
		return 0, fmt.Errorf("'%s' is not a positive whole number of bytes", e.SizeLimit)
	}
	if n < MinEmptyDirSizeLimit {
		return 0, fmt.Errorf("'%s' is below the minimum of 1Mi", e.SizeLimit)
	}
	return n, nil
}

// CheckMedium says what is wrong with Medium, or returns nil.
func (e *EmptyDirVolume) CheckMedium() error {
	if e == nil || e.Medium == "" || e.Medium == EmptyDirMediumMemory {
		return nil
	}
	return fmt.Errorf("'%s' is not a medium: use \"\" (disk) or \"Memory\"", clipString(e.Medium, 64))
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
