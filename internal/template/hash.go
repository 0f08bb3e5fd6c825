package template

import (
	"math/bits"
	"strings"

	"github.com/google/uuid"
)

// uniqueString is ARM's uniqueString(): the arguments joined with "-",
// hashed with Microsoft's 64-bit MurmurHash variant (two 32-bit lanes of
// MurmurHash3 x86's mixing; the same as Azure.Deployments'
// MurmurHash64), and written as 13 characters of lower-case base32 from
// the hash's most significant bits.
func uniqueString(s string) string {
	v := murmurHash64([]byte(s))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var sb strings.Builder
	for i := 0; i < 13; i++ {
		sb.WriteByte(alphabet[v>>59])
		v <<= 5
	}
	return sb.String()
}

func le32(b []byte) uint32 {
	var v uint32
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint32(b[i])
	}
	return v
}

func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func murmurHash64(data []byte) uint64 {
	const c1, c2 = 0x239b961b, 0xab0e9789
	n := len(data)
	var h1, h2 uint32 // seed 0
	i := 0
	for ; i+8 <= n; i += 8 {
		k1 := le32(data[i : i+4])
		k2 := le32(data[i+4 : i+8])

		k1 *= c1
		k1 = bits.RotateLeft32(k1, 15)
		k1 *= c2
		h1 ^= k1
		h1 = bits.RotateLeft32(h1, 19)
		h1 += h2
		h1 = h1*5 + 0x561ccd1b

		k2 *= c2
		k2 = bits.RotateLeft32(k2, 17)
		k2 *= c1
		h2 ^= k2
		h2 = bits.RotateLeft32(h2, 13)
		h2 += h1
		h2 = h2*5 + 0x0bcaa747
	}
	if tail := n - i; tail > 0 {
		k1 := le32(data[i:min(n, i+4)])
		k1 *= c1
		k1 = bits.RotateLeft32(k1, 15)
		k1 *= c2
		h1 ^= k1
		if tail > 4 {
			k2 := le32(data[i+4 : n])
			k2 *= c2
			k2 = bits.RotateLeft32(k2, 17)
			k2 *= c1
			h2 ^= k2
		}
	}
	h1 ^= uint32(n)
	h2 ^= uint32(n)
	h1 += h2
	h2 += h1
	h1 = fmix32(h1)
	h2 = fmix32(h2)
	h1 += h2
	h2 += h1
	return uint64(h2)<<32 | uint64(h1)
}

// guidNamespace is the namespace of ARM's guid(): a name-based (version
// 5, SHA-1) UUID of the arguments joined with "-", in UTF-8.
var guidNamespace = uuid.MustParse("11fb06fb-712d-4ddd-98c7-e71bbd588830")

func armGUID(s string) string {
	return uuid.NewSHA1(guidNamespace, []byte(s)).String()
}
